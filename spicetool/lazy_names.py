"""Names a package exports but imports on first use (PEP 562), so that starting a command costs only
what it uses: the stack's playing side and the capture library's writers, readers and TLS each come
when first looked up. Outside the layers on purpose: importing it imports nothing of spicetool."""
from __future__ import annotations

from importlib import import_module
from typing import Any, Callable, Mapping


def lazy_names(package: str, namespace: dict[str, Any],
               module_of: Mapping[str, str]) -> tuple[Callable[[str], Any], Callable[[], list[str]]]:
    """The package's module `__getattr__` and `__dir__`: `name` is taken from the submodule
    `module_of[name]` when first looked up, and is a plain attribute of the package from then on."""
    def __getattr__(name: str) -> Any:
        module = module_of.get(name)
        if module is None:
            raise AttributeError(f"module {package!r} has no attribute {name!r}")
        value = getattr(import_module(f"{package}.{module}"), name)
        namespace[name] = value  # the next look-up is a plain one
        return value

    def __dir__() -> list[str]:
        return sorted(set(namespace) | set(namespace.get("__all__", ())))

    return __getattr__, __dir__
