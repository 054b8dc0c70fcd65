from typing import Any, Dict, Optional

import numpy as np

KINDS: Dict[str, int]

class LossOp:
    def __init__(self, kind: str, dtype: Any, size: int, width: int,
                 sparse: bool = ...) -> None: ...
    def capsule(self) -> Any: ...

def evaluate_loss(loss: Any, pred: np.ndarray, target: np.ndarray,
                  dpred: Optional[np.ndarray] = ...,
                  weights: Optional[np.ndarray] = ...) -> float: ...
