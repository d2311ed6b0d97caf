"""Exceptions with messages meant for people.

Every error a user can trigger through bad input, a bad file or a missing weight derives from
`XlcoreError`, so drivers (CLI, notebooks, the demo) can show the message instead of a traceback.
"""


def code_span(text: object) -> str:
    """Text as a Markdown code span, so a message that quotes what someone typed (a prompt, a word) shows
    it as typed wherever it is rendered: never as Markdown, never as HTML. The fence outgrows any run of
    backticks inside."""
    text = " ".join(str(text).split())
    fence = "`"
    while fence in text:
        fence += "`"
    padded = f" {text} " if text.startswith("`") or text.endswith("`") else text
    return f"{fence}{padded}{fence}"


class XlcoreError(Exception):
    """Base class of every error that xlcore raises on purpose."""


class ConfigError(XlcoreError, ValueError):
    """A configuration value, preset or override is invalid."""


class PromptError(XlcoreError, ValueError):
    """A prompt that cannot be drawn (empty, whitespace only, or not text)."""


class UnknownLanguageError(XlcoreError, KeyError):
    """A language code that the world or a benchmark does not support."""

    def __init__(self, code: str, supported: list[str] | tuple[str, ...]):
        self.code = code
        self.supported = tuple(supported)
        super().__init__(f"unknown language {code!r}; supported languages: {', '.join(self.supported)}")

    def __str__(self) -> str:  # KeyError would otherwise repr() the message
        return self.args[0]


class UnknownMethodError(XlcoreError, KeyError):
    """A method name that no module has registered."""

    def __init__(self, name: str, registered: list[str] | tuple[str, ...]):
        self.name = name
        self.registered = tuple(registered)
        known = ", ".join(self.registered) if self.registered else "(none registered yet)"
        super().__init__(f"unknown method {name!r}; registered methods: {known}")

    def __str__(self) -> str:
        return self.args[0]


class DataFormatError(XlcoreError, ValueError):
    """A data file (captions, image list, results table) is malformed.

    The message always names the file and, where it makes sense, the 1-based line number.
    """

    def __init__(self, path, problem: str, line: int | None = None):
        self.path = str(path)
        self.line = line
        self.problem = problem
        where = f"{self.path}, line {line}" if line is not None else self.path
        super().__init__(f"{where}: {problem}")


class MissingDataError(XlcoreError, FileNotFoundError):
    """A file or folder that the user has to provide (images, weights) is not there."""


class MissingWeightsError(MissingDataError):
    """Pretrained weights that a preset needs are not on this machine (nothing is downloaded at run time)."""

    def __init__(self, what: str, model_id: str, hint: str = ""):
        self.model_id = model_id
        if hint:
            message = f"{what}: {model_id!r} not found; {hint}"
        else:
            message = (
                f"{what}: weights for {model_id!r} are not in the local Hugging Face cache; download them once on "
                f"a machine with internet access, e.g. `huggingface-cli download {model_id}`, and copy the "
                "Hugging Face cache (HF_HOME) here"
            )
        super().__init__(message)
