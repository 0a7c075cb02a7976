"""The usual claims, one module each, and the registry the plan, the report and the figures loop over.

Adding a claim is one module (a :class:`Claim` named ``CLAIM``) and one
entry below; nothing else in the lab names a claim.
"""

from __future__ import annotations

from collections.abc import Mapping
from types import MappingProxyType

from . import c1_batch, c2_stream, c3_saddles, c4_outliers, c5_rare, c6_effective_lr, c7_tuning, c8_lean
from ._base import Case, Claim, SubClaim, judge

#: The claims in the order the report shows them.
CLAIMS: Mapping[str, Claim] = MappingProxyType(
    {
        m.CLAIM.id: m.CLAIM
        for m in (c1_batch, c2_stream, c3_saddles, c4_outliers, c5_rare, c6_effective_lr, c7_tuning, c8_lean)
    }
)

__all__ = ["CLAIMS", "Case", "Claim", "SubClaim", "judge"]
