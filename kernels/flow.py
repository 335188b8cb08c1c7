"""A synthetic order-entry mix for benchmarks and the demo, shaped like the flows
matching-engine benchmarks use (exchange-core's generator, Liquibook's tests): mostly
passive GTC limit orders around a slowly drifting mid, some marketable IOC orders,
many cancels, some moves (price changes) and size reductions, with the number of
resting orders held near a target.

The generator drives its own scratch book (the real ``kernels.book`` kernels) while
it writes events, so every cancel, move and reduction targets an order that is live
at that point of the flow: replaying the events into a fresh book with the same
settings reproduces the generator's book exactly, with no rejects.
"""
from __future__ import annotations

import numpy as np

from .book import apply_event, find_order
from .jit import kernel
from .pointers import borrow_fills
from .records import BUY, EV_ADD, EV_DELETE, EV_MODIFY, GTC, IOC, LIMIT, R_NONE, SELL
from .state_views import book_borrow


@kernel
def generate_order_mix(st, fills, events, seed, mid, tick, half_span, target_resting,
                       p_ioc, p_cancel, p_move, p_reduce, live_ids):
    """Fill ``events`` with a consistent mix (module doc) for book 0 of ``st``.

    ``half_span``: passive orders are placed up to this many ticks behind the touch
    side's reference (the mid); ``live_ids`` is scratch of at least ``len(events)``.
    Returns the number of resting orders at the end.
    """
    st = book_borrow(st)
    fills = borrow_fills(fills)
    np.random.seed(seed)
    n_live = 0
    next_id = 1
    for i in range(len(events)):
        e = events[i]
        e.ts = i + 1
        e.symbol = 0
        e.order_type = LIMIT
        e.tif = GTC
        # keep the book near its target size: more cancels when above it
        pressure = 0.5 * (n_live - target_resting) / target_resting
        u = np.random.random()
        kind = EV_ADD
        if n_live > 0:
            if u < p_cancel + pressure:
                kind = EV_DELETE
            elif u < p_cancel + pressure + p_move:
                kind = EV_MODIFY
            elif u < p_cancel + pressure + p_move + p_reduce:
                kind = -EV_MODIFY  # a reduction: modify to a smaller quantity, same price
        if kind != EV_ADD:
            # pick a live order; drop ids that were filled meanwhile
            found = -1
            while n_live > 0:
                j = np.random.randint(0, n_live)
                pos = find_order(st, live_ids[j], 0)
                if pos >= 0:
                    found = j
                    break
                n_live -= 1
                live_ids[j] = live_ids[n_live]
            if found < 0:
                kind = EV_ADD
        if kind == EV_ADD:
            side = BUY if np.random.random() < 0.5 else SELL
            qty = 1 + np.random.randint(0, 100)
            if np.random.random() < p_ioc:
                # marketable: cross the mid by a few ticks
                offset = 1 + np.random.randint(0, 5)
                price = mid + offset * tick if side == BUY else mid - offset * tick
                e.tif = IOC
            else:
                offset = 1 + np.random.randint(0, half_span)
                price = mid - offset * tick if side == BUY else mid + offset * tick
            e.kind = EV_ADD
            e.order_id = next_id
            next_id += 1
            e.side = side
            e.price = price
            e.qty = qty
        else:
            oid = live_ids[found]
            slot = st.index_slots[find_order(st, oid, 0)]
            o = st.pool[slot]
            e.order_id = oid
            e.side = o.side
            if kind == EV_DELETE:
                e.kind = EV_DELETE
                e.price = o.price
                e.qty = o.qty
                n_live -= 1
                live_ids[found] = live_ids[n_live]
            elif kind == EV_MODIFY:
                e.kind = EV_MODIFY
                step = 1 + np.random.randint(0, 3)
                # moves go towards or away from the mid at random, staying passive
                if np.random.random() < 0.5:
                    step = -step
                new_price = o.price + step * tick
                if (o.side == BUY and new_price >= mid) or (o.side == SELL and new_price <= mid):
                    new_price = o.price - step * tick
                e.price = new_price
                e.qty = 0
            else:
                e.kind = EV_MODIFY
                e.price = 0
                e.qty = max(1, o.qty // 2)
        result = apply_event(st, fills, 0, e.ts, e.order_id, e.price, e.qty, 0, e.kind, e.side,
                             e.order_type, e.tif)
        if e.kind == EV_ADD and e.tif == GTC and result[1] == R_NONE and result[4] > 0:
            live_ids[n_live] = e.order_id
            n_live += 1
        # the mid drifts a tick now and then
        if np.random.random() < 0.002:
            mid += tick if np.random.random() < 0.5 else -tick
    return n_live
