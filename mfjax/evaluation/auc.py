"""ROC AUC of each user's full ranking, as LightFM's ``auc_score`` reports it.

For an evaluated user u with ranked candidates L_u (every candidate item but u's
``train`` items, best first), positives P_u = the relevant test items among them and
negatives N_u = the rest of L_u:

    AUC_u = (1 / (|P_u| |N_u|)) Σ_{p ∈ P_u} #{n ∈ N_u : n ranked below p}

the probability that a random positive outranks a random negative (ties in score go
by item index, as in every mfjax ranking). Users with no positive or no negative in
L_u have no AUC and are left out of the mean.
"""

from __future__ import annotations

import numpy as np

__all__ = ["rank_auc", "USERS_PER_BLOCK"]

#: Users ranked per block (the full ranking is [block, n_candidates] integers).
USERS_PER_BLOCK = 512


def rank_auc(rank_block, n_users: int, n_candidates: int, rel_keys: np.ndarray,
             n_items: int) -> float:
    """Mean AUC_u over the users with both positives and negatives.

    Args:
        rank_block: ``(start, stop) -> top [stop - start, n_candidates]``, the full
            rankings (model item indices, −1 past a user's list) of users start..stop.
        n_users: evaluated users U (positions 0..U-1).
        n_candidates: m', the length of a full ranking.
        rel_keys: sorted ``position · n_items + item`` of every relevant (user, item).
        n_items: the model's item count.

    Returns:
        The mean AUC, NaN when no user has both.
    """
    total, counted = 0.0, 0
    for s in range(0, n_users, USERS_PER_BLOCK):
        e = min(s + USERS_PER_BLOCK, n_users)
        top = np.asarray(rank_block(s, e))
        rows = np.arange(s, e, dtype=np.int64)[:, None]
        listed = top >= 0
        pos = listed & np.isin(rows * n_items + top, rel_keys)
        n_listed, n_pos = listed.sum(axis=1), pos.sum(axis=1)
        n_neg = n_listed - n_pos
        # Negatives below a positive at position r: the listed entries after r, less
        # the positives after r.
        after_listed = n_listed[:, None] - 1 - np.arange(top.shape[1])[None, :]
        after_pos = np.cumsum(pos[:, ::-1], axis=1)[:, ::-1] - pos
        below = np.where(pos, after_listed - after_pos, 0).sum(axis=1)
        ok = (n_pos > 0) & (n_neg > 0)
        total += float(np.sum(below[ok] / (n_pos[ok] * n_neg[ok])))
        counted += int(ok.sum())
    return total / counted if counted else float("nan")
