from typing import Any, Optional

import numpy as np

class DenseOp:
    def __init__(self, W: np.ndarray, b: Optional[np.ndarray], gW: np.ndarray,
                 gb: Optional[np.ndarray], rows_per_sample: int = ...,
                 activation: int = ..., alpha: float = ...) -> None: ...
    def capsule(self) -> Any: ...
