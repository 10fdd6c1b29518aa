from . import models
from .hooks import post_init_hook  # noqa: F401 (named in __manifest__.py)
