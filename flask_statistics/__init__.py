from .config import ConfigError
from .extension import Statistics, StatisticsState
from .writer import WriterHealth

__all__ = ["ConfigError", "Statistics", "StatisticsState", "WriterHealth"]
