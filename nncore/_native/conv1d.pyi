from typing import Any, Optional

import numpy as np

class Conv1DOp:
    def __init__(self, kernel: np.ndarray, bias: Optional[np.ndarray], g_kernel: np.ndarray,
                 g_bias: Optional[np.ndarray], length: int, out_length: int, stride: int,
                 dilation: int, pad_left: int) -> None: ...
    def capsule(self) -> Any: ...
