"""Price-level (L2) books on a dense tick ladder: Binance depth replay and L3 top of book.

Owns the ladder update :func:`set_level` and the depth-row rule :func:`apply_depth` (the
L2 backtest applies its rows through it, so the replay check and the backtester keep one
book the same way) and two kernels
over ``kernels.records.L2_UPDATE`` rows (one price level's new absolute size, as a depth
feed sends it; ``L2F_*`` flags) and ``EVENT`` rows, both writing ``BBO`` rows:

``replay_l2``          applies L2 updates (snapshots and diffs) to one book and writes
                       the best bid/ask after every message (``BBO`` rows keyed by the
                       message's last update id), for comparison with a BBO feed.
``top_of_book_l3``     aggregates L3 events (adds, cancels, executions, market sweeps)
                       into per-symbol ladders and writes the best bid/ask after each
                       event: spreads and mids of simulated or LOBSTER flow.

The ladder is a dense array of sizes indexed by ``(price - low) // tick`` (the Python
layer picks ``low``/``tick``/length from the data), with the best index maintained
incrementally: a level appearing above the best bid becomes the best; the best level
emptying scans down to the next non-empty one. Prices off the grid or outside the
ladder are counted, never written out of bounds.
"""
from __future__ import annotations

import numpy as np

from kernels import records as R
from kernels.jit import kernel


@kernel(inline="always")
def set_level(bids, asks, side, idx, qty, best):
    """Set one level's size; ``best`` is a 2-array [best bid idx, best ask idx] (-1 = empty)."""
    n = bids.shape[0]
    if side == R.BUY:
        bids[idx] = qty
        if qty > 0:
            if best[0] < 0 or idx > best[0]:
                best[0] = idx
        elif idx == best[0]:
            j = idx - 1
            while j >= 0 and bids[j] <= 0:
                j -= 1
            best[0] = j
    else:
        asks[idx] = qty
        if qty > 0:
            if best[1] < 0 or idx < best[1]:
                best[1] = idx
        elif idx == best[1]:
            j = idx + 1
            while j < n and asks[j] <= 0:
                j += 1
            best[1] = j if j < n else -1


@kernel(inline="always")
def apply_depth(bids, asks, best, low, tick, u):
    """Apply one depth row (L2_UPDATE, not a trade) to a ladder; the one rule the replay
    check and the L2 backtester both run. A snapshot's first row clears the book before
    anything else (even when that row is an empty marker or off the ladder). Returns the
    level's previous size, -1 for an empty message's marker row (``price < 0``) and -2 for
    a price off the grid or outside the ladder (counted by the caller, never written)."""
    if u.flags & R.L2F_SNAPSHOT_START:
        bids[:] = 0
        asks[:] = 0
        best[0] = -1
        best[1] = -1
    if u.price < 0:
        return np.int64(-1)
    offset = u.price - low
    if offset < 0 or offset % tick != 0 or offset // tick >= bids.shape[0]:
        return np.int64(-2)
    idx = offset // tick
    prev = bids[idx] if u.side == R.BUY else asks[idx]
    set_level(bids, asks, u.side, idx, u.qty, best)
    return prev


@kernel
def replay_l2(updates, low, tick, bids, asks, out):
    """Apply ``updates`` (L2_UPDATE, one book: depth rows, and trade rows, which leave the
    book alone) to the ladders; write a BBO row per message.

    Returns ``(n_rows, n_out_of_range, n_crossed)``: a row is written after each depth row
    flagged ``L2F_END_OF_MESSAGE``; ``n_crossed`` counts the messages after which the
    book is crossed (best bid at or above best ask). ``bids``/``asks`` are zeroed ladders
    of equal length.
    """
    best = np.full(2, -1, dtype=np.int64)
    rows = 0
    bad = 0
    crossed = 0
    for i in range(updates.shape[0]):
        u = updates[i]
        if u.flags & R.L2F_TRADE:
            continue
        if apply_depth(bids, asks, best, low, tick, u) == -2:
            bad += 1
        if u.flags & R.L2F_END_OF_MESSAGE:
            if best[0] >= 0 and best[1] >= 0 and best[0] >= best[1]:
                crossed += 1
            if rows < out.shape[0]:
                row = out[rows]
                row.ts = u.ts
                row.update_id = u.update_id
                if best[0] >= 0:
                    row.bid_price = low + best[0] * tick
                    row.bid_qty = bids[best[0]]
                else:
                    row.bid_price = -1
                    row.bid_qty = 0
                if best[1] >= 0:
                    row.ask_price = low + best[1] * tick
                    row.ask_qty = asks[best[1]]
                else:
                    row.ask_price = -1
                    row.ask_qty = 0
                rows += 1
    return rows, bad, crossed


@kernel
def top_of_book_l3(events, low, tick, bids, asks, out):
    """Best bid/ask of ``events[i].symbol`` after each L3 event, written to ``out[i]``.

    ``low[s]`` is symbol s's ladder origin; ``bids``/``asks`` are zeroed
    ``(n_symbols, levels)`` ladders. Adds add size at their price; cancels, deletes and
    executions remove it; a MARKET add sweeps the opposite side from the best level
    (what a matching engine does to aggregated size). Hidden executions, crosses and
    halts leave the book alone. Returns the number of events whose price was off the
    ladder (their size was not applied).
    """
    n_sym = bids.shape[0]
    n = bids.shape[1]
    best = np.full((n_sym, 2), -1, dtype=np.int64)
    bad = 0
    for i in range(events.shape[0]):
        e = events[i]
        s = e.symbol
        b = bids[s]
        a = asks[s]
        bs = best[s]
        kind = e.kind
        if kind == R.EV_ADD and e.order_type == R.MARKET:
            remaining = e.qty
            if e.side == R.BUY:
                while remaining > 0 and bs[1] >= 0:
                    j = bs[1]
                    take = min(remaining, a[j])
                    remaining -= take
                    set_level(b, a, R.SELL, j, a[j] - take, bs)
            else:
                while remaining > 0 and bs[0] >= 0:
                    j = bs[0]
                    take = min(remaining, b[j])
                    remaining -= take
                    set_level(b, a, R.BUY, j, b[j] - take, bs)
        elif kind == R.EV_ADD or kind == R.EV_CANCEL or kind == R.EV_DELETE or kind == R.EV_EXECUTE:
            offset = e.price - low[s]
            idx = offset // tick
            if offset < 0 or idx >= n or offset % tick != 0:
                bad += 1
            else:
                if e.side == R.BUY:
                    current = b[idx]
                else:
                    current = a[idx]
                if kind == R.EV_ADD:
                    new = current + e.qty
                else:
                    new = current - e.qty
                    if new < 0:
                        new = 0
                set_level(b, a, e.side, idx, new, bs)
        row = out[i]
        row.ts = e.ts
        row.update_id = e.order_id
        if bs[0] >= 0:
            row.bid_price = low[s] + bs[0] * tick
            row.bid_qty = b[bs[0]]
        else:
            row.bid_price = -1
            row.bid_qty = 0
        if bs[1] >= 0:
            row.ask_price = low[s] + bs[1] * tick
            row.ask_qty = a[bs[1]]
        else:
            row.ask_price = -1
            row.ask_qty = 0
    return bad
