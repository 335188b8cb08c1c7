"""NASDAQ TotalView-ITCH 5.0 codec kernels, one module per concept.

Import the module you need (``from kernels.itch import decode as itch_decode``); this
package re-exports nothing.

``fields``  big-endian integer and raw-byte accessors over a uint8 buffer (read and write).
``frame``   the 2-byte big-endian length framing, the spec's message types and lengths,
            the one framing rule every walk shares (:func:`frame.frame_at`) and the
            first pass (:func:`frame.scan`): counts per type, bad frames, truncation,
            per-locate counts and tick sizes, where the stock directory messages sit.
``refs``    the order-reference table (open addressing over ``ITCH_REF`` records, hashing
            that keeps NASDAQ's sequential references next to each other).
``decode``  messages -> ``ITCH_MSG`` (every field of every type) and bytes -> ``EVENT``
            (the engine's replay records, with the reference table filling in side and
            price), resumable chunk by chunk.
``encode``  ``ITCH_MSG`` -> bytes (every type), and a feed-shaped ``EVENT`` flow (the
            simulator's) -> a valid stream of order messages.
``replay``  ``EVENT`` -> one engine holding a book per stock locate, with the top of every
            book tracked after each instant (``BOOK_TOP`` rows when it changes, crossed books).
``prefetch`` a software prefetch hint (``llvm.prefetch``) for lookups in large tables.

Imports run one way: ``fields`` and ``prefetch`` are leaves; ``frame`` builds on
``fields``; ``refs`` stands alone; ``decode`` and ``encode`` build on those; ``replay``
only on ``kernels.book``.
The records (``ITCH_MSG``, ``ITCH_REF``, ``BOOK_TOP``) live in the ITCH section of
``kernels.records``; the Python face is ``workbench.data.itch``.
"""
