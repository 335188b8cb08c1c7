"""FIX 4.4 codec kernels, one module per concept.

Import the module you need (``from kernels.fix import frame as fix_frame``); this
package re-exports nothing.

``frame``     framing and the zero-copy tag index: the ``8=FIX`` scan, BodyLength and
              CheckSum checks, resync on garbage, ``FIX_R_*`` reject counts, ``SCAN_*``
              status, the packed MsgType code.
``fields``    tag lookup (``find_field``) and typed accessors over one value's byte span
              (int, decimal in price units, char, UTCTimestamp, order id, symbol key),
              ``NO_VALUE``, and the ASCII bytes of the ``tag=value`` syntax.
``validate``  validation against the FIX 4.4 dictionary subset: the ``T_*`` / ``INFO_*``
              table codes and one SessionRejectReason per message, serial and per chunk.
``decode``    D/F/G -> ``EVENT``, 8 -> ``EXEC_REPORT``, W/X repeating groups -> ``MD_ENTRY``,
              and the parallel parse (``scan_chunks``, ``compact_chunks``,
              ``decode_orders_chunks``).
``encode``    ``EXEC_REPORT`` records -> ExecutionReport (35=8) wire bytes.

Imports run one way: ``fields`` is the leaf; ``frame`` and ``validate`` build on it;
``decode`` on those three; ``encode`` on ``fields`` and ``frame``. The records
(``FIX_MESSAGE``, ``FIX_FIELD``, ``EXEC_REPORT``, ``MD_ENTRY``) and the codes stored in them
(``MT_*`` MsgTypes, ``SR_*`` SessionRejectReasons) live in the FIX section of
``kernels.records``. Session logic (logon, sequence numbers, resends) is Python, in
``workbench.fix.session``; the Python face of these kernels is ``workbench.fix``.
"""
