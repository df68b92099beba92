"""World model (method §4) and the distributions shared by its heads (method §5)."""
from gsa.models.distributions import OneHotDist, TwoHot, symexp, symlog, two_hot
from gsa.models.rssm import RSSM, State
from gsa.models.world_model import WorldModel, free_bits, parameter_counts

__all__ = ["OneHotDist", "RSSM", "State", "TwoHot", "WorldModel", "free_bits", "parameter_counts",
           "symexp", "symlog", "two_hot"]
