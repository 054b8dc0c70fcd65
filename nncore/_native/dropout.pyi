from typing import Any

import numpy as np

class DropoutOp:
    def __init__(self, dtype: Any, size: int, rate: float, state: np.ndarray) -> None: ...
    def capsule(self) -> Any: ...
