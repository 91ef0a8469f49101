"""The member / non-member sample that an attack's query budget can score.

A membership or attribute attack queries the target once (or a fixed number of times) per
evaluated point, plus a calibration share. Asked for more points than the budget carries, it
would spend the budget on the first points and fail on the rest with nothing measured. Instead
the sample shrinks, before any query, to the largest balanced one the budget pays for, and the
finding says so; below :data:`MIN_PER_SIDE` points a side the attack refuses up front.
"""

from __future__ import annotations

from aisec.data import Dataset
from aisec.data.dataset import MembershipSplit
from aisec.errors import BudgetExceededError
from aisec.targets.base import TargetView

#: Fewest members (and as many non-members) a budget-shrunk sample keeps; fewer measure nothing.
MIN_PER_SIDE = 20


def affordable_split(
    view: TargetView,
    data: Dataset,
    n: int | None,
    seed: int,
    *,
    attack: str,
    per_point: int = 1,
    population: int | None = 0,
) -> tuple[MembershipSplit, list[str]]:
    """:meth:`Dataset.membership_split` cut to what ``view``'s remaining budget pays for.

    Parameters
    ----------
    view:
        The attacker's view; its ``budget.remaining`` is what the sample may cost.
    data, n, seed:
        As for :meth:`~aisec.data.Dataset.membership_split`.
    attack:
        The attack's name, for the flag and the error.
    per_point:
        Queries per evaluated point.
    population:
        Population points the attack also queries, at ``per_point`` each, to calibrate: ``0`` none, ``None`` all
        of the split's, ``n`` at most ``n``.

    Returns
    -------
    The split, and a flag (empty when the whole sample was affordable).

    Raises
    ------
    BudgetExceededError
        When even :data:`MIN_PER_SIDE` points a side do not fit; nothing has been queried.
    """
    split = data.membership_split(n, seed)
    left = view.budget.remaining
    k = len(split.members[1])
    n_pop = len(split.population[1])
    fixed = per_point * (n_pop if population is None else min(population, n_pop))
    need = per_point * (k + len(split.non_members[1])) + fixed
    if left is None or need <= left:
        return split, []
    fit = max(0, left - fixed) // (2 * per_point)
    if fit < min(MIN_PER_SIDE, k):
        at_least = per_point * 2 * min(MIN_PER_SIDE, k) + fixed
        raise BudgetExceededError(
            view.budget.limit or 0,
            view.budget.used,
            at_least,
            detail=f"{attack} needs at least {at_least} queries ({min(MIN_PER_SIDE, k)} members and as many "
            f"non-members at {per_point} each, {fixed} to calibrate); {left} are left",
        )
    split = data.membership_split(fit, seed)
    flag = (
        f"the query budget ({left} queries left) pays for {fit} members and {fit} non-members of the {k} "
        f"asked for ({need} queries): intervals are wider and the lowest resolvable FPR higher"
    )
    return split, [flag]
