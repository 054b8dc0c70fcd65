from typing import Any, Optional, Tuple

import numpy as np

class ConvPoolOp:
    def __init__(self, kernel: np.ndarray, bias: Optional[np.ndarray], g_kernel: np.ndarray,
                 g_bias: Optional[np.ndarray], input_hw: Tuple[int, int], output_hw: Tuple[int, int],
                 strides: Tuple[int, int], padding_top_left: Tuple[int, int], activation: int,
                 alpha: float, pool: Tuple[int, int]) -> None: ...
    @property
    def winograd(self) -> bool: ...
    @property
    def by_tap(self) -> bool: ...
    def capsule(self) -> Any: ...
