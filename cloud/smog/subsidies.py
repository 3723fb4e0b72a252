"""Which grants apply to a heating option and how much: the national Czyste Powietrze programme by income
tier (rules from 31 March 2025) and the city's Stop Smog grant, each with the rule applied written in Polish.

Czyste Powietrze is computed first; the city's grant then covers at most what is left of the cost, so that
grants never add up to more than the investment.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from pydantic import BaseModel, ConfigDict

from cloud.smog import formulas
from cloud.smog.trace import Trace
from cloud.smog.wording import percent_pl, pln

CleanAirTier = Literal["highest", "increased", "basic"]
CLEAN_AIR = "czyste_powietrze"
CITY_STOP_SMOG = "city_stop_smog"


class SubsidyLine(BaseModel):
    """One programme's grant for one option, with the rule that gave it."""

    model_config = ConfigDict(frozen=True)

    programme: str
    programme_label_pl: str
    tier: str | None
    eligible_cost_pln: float
    amount_pln: float
    rule_pl: str
    unconfirmed: bool

    def in_grosze(self) -> SubsidyLine:
        """The line with its amounts rounded to the grosz, as the answer shows them (they are summed
        unrounded)."""
        return SubsidyLine(
            programme=self.programme,
            programme_label_pl=self.programme_label_pl,
            tier=self.tier,
            eligible_cost_pln=round(self.eligible_cost_pln, 2),
            amount_pln=round(self.amount_pln, 2),
            rule_pl=self.rule_pl,
            unconfirmed=self.unconfirmed,
        )


@dataclass(frozen=True)
class TierDecision:
    """The Czyste Powietrze tier a household qualifies for (``None``: not eligible) and why, in Polish."""

    tier: CleanAirTier | None
    explanation_pl: str
    income_given: bool


@dataclass(frozen=True)
class CostItem:
    """Part of an investment the programme subsidises as one item (``item`` is the key under
    ``subsidies.czyste_powietrze.items``)."""

    item: str
    cost_pln: float


def clean_air_tier(
    trace: Trace,
    income_pln_per_person_month: float | None,
    household_size: int,
    applicant_income_pln_per_year: float | None,
) -> TierDecision:
    """The Czyste Powietrze tier by income.

    Highest and increased tiers go by the household's income per person a month, with a higher threshold
    for a one-person household; the basic tier needs the applicant's yearly income under its limit. Without
    an income the basic tier is assumed and the explanation says so.
    """
    base = "subsidies.czyste_powietrze.tiers"
    single = household_size == 1
    threshold_kind = "single" if single else "multi"
    household_pl = "jednoosobowe" if single else "wieloosobowe"
    if applicant_income_pln_per_year is not None:
        limit = trace.value(f"{base}.basic.applicant_income_max_pln_per_year")
        if applicant_income_pln_per_year > limit:
            return TierDecision(
                None,
                f"Roczny dochód wnioskodawcy {pln(applicant_income_pln_per_year)} przekracza {pln(limit)}: "
                "program „Czyste Powietrze” nie przysługuje.",
                True,
            )
    if income_pln_per_person_month is None:
        return TierDecision(
            "basic",
            "Nie podano dochodu: przyjęto poziom podstawowy programu „Czyste Powietrze” (40 %). "
            "Podaj dochód na osobę, aby sprawdzić poziom podwyższony lub najwyższy.",
            False,
        )
    for tier in ("highest", "increased"):
        limit = trace.value(f"{base}.{tier}.income_max_pln_per_person_month_{threshold_kind}")
        if income_pln_per_person_month <= limit:
            label = trace.data.subsidies.czyste_powietrze.tiers.highest.label_pl
            if tier == "increased":
                label = trace.data.subsidies.czyste_powietrze.tiers.increased.label_pl
            return TierDecision(
                tier,
                f"Dochód {pln(income_pln_per_person_month)} na osobę miesięcznie (gospodarstwo "
                f"{household_pl}) nie przekracza {pln(limit)}: {label} programu „Czyste Powietrze”.",
                True,
            )
    basic_limit = trace.value(f"{base}.basic.applicant_income_max_pln_per_year")
    return TierDecision(
        "basic",
        f"Dochód {pln(income_pln_per_person_month)} na osobę miesięcznie przekracza progi poziomów "
        "podwyższonego i najwyższego: poziom podstawowy programu „Czyste Powietrze” (dochód roczny "
        f"wnioskodawcy do {pln(basic_limit)}).",
        True,
    )


def clean_air_grant(
    trace: Trace, tier: TierDecision, items: list[CostItem], excluded_reason_pl: str | None
) -> SubsidyLine | None:
    """Czyste Powietrze for the items of one option, or ``None`` when the household does not qualify.

    Each item's grant is the tier's rate of its cost, the cost counted up to the item's highest eligible
    cost; the items together are capped by the tier's overall cap.

    Notes
    -----
    .. math:: G = \\min\\Big(\\sum_i r \\min(C_i, C_{max,i}),\\; G_{tier}\\Big)
    """
    programme = trace.data.subsidies.czyste_powietrze
    if tier.tier is None:
        return None
    tier_model = getattr(programme.tiers, tier.tier)
    if excluded_reason_pl is not None or not items:
        eligible_total = 0.0
        rule = excluded_reason_pl or "Brak pozycji kwalifikowanych w programie."
        unconfirmed = False
        if excluded_reason_pl is not None:
            unconfirmed = trace.fact("subsidies.czyste_powietrze.gas_boilers_excluded_from").unconfirmed
        return SubsidyLine(
            programme=CLEAN_AIR,
            programme_label_pl=programme.label_pl,
            tier=tier.tier,
            eligible_cost_pln=eligible_total,
            amount_pln=0.0,
            rule_pl=rule,
            unconfirmed=unconfirmed,
        )
    rate = trace.value(f"subsidies.czyste_powietrze.tiers.{tier.tier}.rate")
    overall_cap = trace.value(f"subsidies.czyste_powietrze.tiers.{tier.tier}.cap_pln")
    parts: list[str] = []
    total = 0.0
    eligible_total = 0.0
    unconfirmed = False
    share = trace.formula(formulas.capped_share_pln)
    for cost_item in items:
        key = f"subsidies.czyste_powietrze.items.{cost_item.item}.max_eligible_cost_pln"
        max_eligible = trace.value(key)
        unconfirmed = unconfirmed or trace.data.sourced(key).unconfirmed
        grant = float(share(cost_item.cost_pln, rate, rate * max_eligible))
        eligible_total += min(cost_item.cost_pln, max_eligible)
        total += grant
        label = getattr(programme.items, cost_item.item).label_pl
        counted = f"min({pln(cost_item.cost_pln)}, {pln(max_eligible)})"
        parts.append(f"{label}: {percent_pl(rate)} × {counted} = {pln(grant)}")
    capped = min(total, overall_cap)
    rule = f"{programme.label_pl}, {tier_model.label_pl} ({percent_pl(rate)}): " + "; ".join(parts)
    if capped < total:
        rule += f"; razem ograniczone do {pln(overall_cap)}"
    rule += "."
    tier_unconfirmed = any(
        reference.unconfirmed
        for reference in trace.references
        if reference.key.startswith(f"subsidies.czyste_powietrze.tiers.{tier.tier}.")
    )
    return SubsidyLine(
        programme=CLEAN_AIR,
        programme_label_pl=programme.label_pl,
        tier=tier.tier,
        eligible_cost_pln=eligible_total,
        amount_pln=capped,
        rule_pl=rule,
        unconfirmed=unconfirmed or tier_unconfirmed,
    )


def city_grant(trace: Trace, investment_pln: float, other_grants_pln: float) -> SubsidyLine:
    """The city's Stop Smog grant: the smaller of its cap and its rate of the whole investment, and never
    more than the part of the investment other grants leave.

    Notes
    -----
    .. math:: G = \\min(\\min(r\\,C, G_{max}),\\; C - G_{other})
    """
    programme = trace.data.subsidies.city_stop_smog
    rate = trace.value("subsidies.city_stop_smog.rate")
    cap = trace.value("subsidies.city_stop_smog.cap_pln")
    grant = float(trace.formula(formulas.capped_share_pln)(investment_pln, rate, cap))
    left = max(investment_pln - other_grants_pln, 0.0)
    amount = min(grant, left)
    rule = f"{programme.label_pl}: min({pln(cap)}, {percent_pl(rate)} × {pln(investment_pln)}) = {pln(grant)}"
    if amount < grant:
        rule += f", ograniczone do kosztu niepokrytego innymi dotacjami ({pln(left)})"
    rule += " (zasada miejskiego kalkulatora z 2020 r., do potwierdzenia przez miasto)."
    return SubsidyLine(
        programme=CITY_STOP_SMOG,
        programme_label_pl=programme.label_pl,
        tier=None,
        eligible_cost_pln=investment_pln,
        amount_pln=amount,
        rule_pl=rule.replace(" .", "."),
        unconfirmed=programme.rate.unconfirmed or programme.cap_pln.unconfirmed,
    )
