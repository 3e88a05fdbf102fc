"""Input: read AnnData files, find raw counts and gene identifiers, check values."""

from mmgene.io.expression import Expression, expression
from mmgene.io.read import obs_column, read

__all__ = ["Expression", "expression", "obs_column", "read"]
