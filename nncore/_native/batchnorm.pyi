from typing import Any

import numpy as np

class BatchNormOp:
    def __init__(self, size: int, gamma: np.ndarray, beta: np.ndarray, g_gamma: np.ndarray,
                 g_beta: np.ndarray, moving_mean: np.ndarray, moving_var: np.ndarray,
                 momentum: float, epsilon: float) -> None: ...
    def capsule(self) -> Any: ...
