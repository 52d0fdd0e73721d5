"""Prompt templates and chat-template application.

A template is a string with one `{problem}` placeholder, substituted with `str.replace`, so
braces elsewhere in the template (`\\boxed{}`) and anywhere in the problem text are kept as is.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

__all__ = ["PromptTemplate", "TEMPLATES", "build_messages", "get_template", "render_prompt"]

PLACEHOLDER = "{problem}"


@dataclass(frozen=True)
class PromptTemplate:
    template: str
    name: str = "custom"

    def __post_init__(self):
        if PLACEHOLDER not in self.template:
            raise ValueError(f"prompt template must contain {PLACEHOLDER}: {self.template!r}")

    def render(self, problem_text: str) -> str:
        return self.template.replace(PLACEHOLDER, problem_text)

    __call__ = render


TEMPLATES: dict[str, PromptTemplate] = {
    "boxed": PromptTemplate("{problem}\nPlease reason step by step, and put your final answer within \\boxed{}.", "boxed"),
    "plain": PromptTemplate("{problem}", "plain"),
}


def get_template(template: str | PromptTemplate | None) -> PromptTemplate:
    """A named template (`boxed`, `plain`), a custom string containing `{problem}`, or a
    `PromptTemplate`. None means `boxed`."""
    if template is None:
        return TEMPLATES["boxed"]
    if isinstance(template, PromptTemplate):
        return template
    if template in TEMPLATES:
        return TEMPLATES[template]
    if PLACEHOLDER not in template:
        raise ValueError(f"unknown prompt template {template!r}: use one of {sorted(TEMPLATES)} "
                         f"or a string containing {PLACEHOLDER}")
    return PromptTemplate(template)


def build_messages(problem_text: str, template: str | PromptTemplate | None = "boxed",
                   system: str | None = None) -> list[dict[str, str]]:
    """[system?, user] chat messages with the problem inside the template."""
    messages: list[dict[str, str]] = []
    if system:
        messages.append({"role": "system", "content": system})
    messages.append({"role": "user", "content": get_template(template).render(problem_text)})
    return messages


def has_chat_template(tokenizer: Any) -> bool:
    return tokenizer is not None and bool(getattr(tokenizer, "chat_template", None))


def render_prompt(tokenizer: Any, messages: list[dict[str, str]], *, enable_thinking: bool | None = None) -> str:
    """The prompt text ending where the assistant's answer begins.

    With a chat template: `apply_chat_template(..., tokenize=False, add_generation_prompt=True)`,
    passing `enable_thinking` only when it is not None. Without one (base models, tiny word
    tokenizers): the message contents joined by blank lines, nothing else."""
    if has_chat_template(tokenizer):
        kwargs: dict[str, Any] = {"tokenize": False, "add_generation_prompt": True}
        if enable_thinking is not None:
            kwargs["enable_thinking"] = enable_thinking
        text = tokenizer.apply_chat_template(messages, **kwargs)
        if not isinstance(text, str):  # some versions may return a list for batched input
            text = text[0]
        return text
    return "\n\n".join(m["content"] for m in messages if m.get("content"))
