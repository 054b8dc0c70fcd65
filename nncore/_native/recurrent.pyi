from typing import Any, Dict, Tuple

import numpy as np

CELLS: Dict[str, Tuple[int, int]]

class RecurrentOp:
    def __init__(self, cell: str, kernel: np.ndarray, recurrent: np.ndarray, bias: np.ndarray,
                 g_kernel: np.ndarray, g_recurrent: np.ndarray, g_bias: np.ndarray,
                 steps: int, return_sequences: bool, go_backwards: bool) -> None: ...
    def capsule(self) -> Any: ...
