from typing import Any, Dict

KINDS: Dict[str, int]

class ActivationOp:
    def __init__(self, name: str, dtype: Any, size: int, width: int,
                 alpha: float = ...) -> None: ...
    def capsule(self) -> Any: ...
