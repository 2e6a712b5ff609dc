"""LightFM rows for the cold-items benchmark (a benchmark-only dependency; see the
recipe in bench_cold_start.py's docstring). ``fit_lightfm(train, F, identity, epochs)``
trains LightFM WARP on ``train`` with the items of ``F`` as extra columns (cold items:
empty columns) and returns a scorer ``(users, cold) -> S``."""
from __future__ import annotations

import time

import numpy as np
import scipy.sparse as sp


def fit_lightfm(train, F, identity: bool, epochs: int = 20, threads: int = 2, **kw):
    from lightfm import LightFM

    items = np.union1d(train.item_ids, F.items.ids)
    pos_tr = np.searchsorted(items, train.item_ids)
    X = sp.coo_matrix((np.ones(len(train)), (train.users, pos_tr[train.items])),
                      shape=(train.n_users, len(items))).tocsr()
    G = sp.csr_matrix(F.items.dense(items))
    if identity:
        G = sp.hstack([sp.identity(len(items), format="csr"), G]).tocsr()
    t = time.perf_counter()
    m = LightFM(loss="warp", random_state=0, **kw)
    m.fit(X, item_features=G, epochs=epochs, num_threads=threads)
    sec = time.perf_counter() - t

    def scores(users, cold):
        u = np.searchsorted(train.user_ids, users)
        c = np.searchsorted(items, cold)
        uu, cc = np.repeat(u, len(c)), np.tile(c, len(u))
        s = m.predict(uu.astype(np.int32), cc.astype(np.int32), item_features=G,
                      num_threads=threads)
        return s.reshape(len(u), len(c))

    return scores, sec
