"""Prompts: templates, the chat template, and `PromptBuilder`, the one place a prompt is rendered.

A template is a string with one `{problem}` placeholder, substituted with `str.replace`, so
braces elsewhere in the template (`\\boxed{}`) and anywhere in the problem text are kept as is.

The study's key invariant is that training, evaluation, the information lens and SFT all show the
model the same prompt for the same problem; they all render it through `PromptBuilder`.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

__all__ = ["PromptBuilder", "PromptTemplate", "TEMPLATES", "build_messages", "get_template", "render_prompt",
           "truncate_ids"]

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
    "boxed": PromptTemplate("{problem}\nPlease reason step by step, and put your final answer within \\boxed{}.",
                            "boxed"),
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


def truncate_ids(ids: list[int], max_len: int, side: str) -> tuple[list[int], bool]:
    """Cap a prompt at max_len tokens: side=left keeps the last tokens (TRL), right keeps the first
    (lasgroup). Returns (ids, whether anything was cut)."""
    if len(ids) <= max_len:
        return ids, False
    return (ids[-max_len:] if side == "left" else ids[:max_len]), True


class PromptBuilder:
    """Renders prompts for one tokenizer and prompt configuration: the problem in the prompt
    template as the user message, the chat template on top, no special tokens added.

    prompt_ids(problem): the plain prompt, its last max_prompt_length tokens (cached per problem id);
    context(text): a teacher / guided prompt (a user message that already holds the problem and a
    context), capped at max_context_length from the `truncation` side.
    """

    def __init__(self, tokenizer, *, template: str = "boxed", system_prompt: str | None = None,
                 enable_thinking: bool | None = None, max_prompt_length: int | None = None,
                 max_context_length: int | None = None, truncation: str = "left"):
        self.tokenizer = tokenizer
        self.template = template
        self.system_prompt = system_prompt
        self.enable_thinking = enable_thinking
        self.max_prompt_length = max_prompt_length
        self.max_context_length = max_context_length
        self.truncation = truncation
        self._cache: dict[str, list[int]] = {}
        self.cut: set[str] = set()
        """Ids of the problems whose prompt was longer than max_prompt_length (cut to its end)."""

    @classmethod
    def from_config(cls, tokenizer, cfg) -> "PromptBuilder":
        """The builder of a run config (`data.*` for the prompt, `sdpo.max_reprompt_len` /
        `sdpo.reprompt_truncation` for teacher and guided prompts)."""
        d, s = cfg.data, cfg.sdpo
        return cls(tokenizer, template=d.prompt_template, system_prompt=d.system_prompt,
                   enable_thinking=d.enable_thinking, max_prompt_length=d.max_prompt_length,
                   max_context_length=s.max_reprompt_len, truncation=s.reprompt_truncation)

    def user_text(self, problem) -> str:
        """The user message: the problem inside the prompt template."""
        return build_messages(problem.prompt, self.template, self.system_prompt)[-1]["content"]

    def render(self, user_text: str) -> list[int]:
        """Token ids of a user message under the chat template (no cutting)."""
        messages = build_messages(user_text, "plain", self.system_prompt)
        text = render_prompt(self.tokenizer, messages, enable_thinking=self.enable_thinking)
        return self.tokenizer(text, add_special_tokens=False)["input_ids"]

    def prompt_ids(self, problem) -> list[int]:
        if problem.id not in self._cache:
            ids = self.render(self.user_text(problem))
            if self.max_prompt_length and len(ids) > self.max_prompt_length:
                self.cut.add(problem.id)
                ids = ids[-self.max_prompt_length:]
            self._cache[problem.id] = ids
        return self._cache[problem.id]

    def context(self, text: str) -> tuple[list[int], bool]:
        """(token ids, whether they were cut) of a teacher / guided prompt."""
        ids = self.render(text)
        if self.max_context_length is None:
            return ids, False
        return truncate_ids(ids, self.max_context_length, self.truncation)

    def context_ids(self, text: str) -> list[int]:
        return self.context(text)[0]
