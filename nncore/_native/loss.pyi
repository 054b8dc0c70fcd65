from typing import Any, Dict

KINDS: Dict[str, int]

class LossOp:
    def __init__(self, kind: str, dtype: Any, size: int, width: int,
                 sparse: bool = ...) -> None: ...
    def capsule(self) -> Any: ...
