"""The shape every pipeline task has: a `TaskSpec` (what it accepts, how its input is checked, how a file row and
an evaluation example map onto it) and a `TaskHandler` (preprocess → forward → postprocess on a loaded model, as
transformers' `Pipeline`). One module per task under backend/tasks/ subclasses both; backend/tasks/table.py lists
them. Recipe: docs/recipes/task.md.

No torch here, and none at import time in a task module either: backend/core/config.py validates models.yaml through
the table, and `import ui` must not pull torch in. A task module imports torch / transformers inside the
functions that load and run the model.
"""

from __future__ import annotations

from backend.core.hf_types import HFModel, HFTokenizer, UNLOADED_MODEL
import inspect
import threading
from abc import ABC, abstractmethod
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable, ClassVar, Generator, Generic, NoReturn, Optional, Protocol, Sequence, \
    TypeAlias, runtime_checkable

from typing_extensions import TypeVar

from backend.core.error_codes import refuse
from backend.core.json_types import JSONScalar
from backend.guard.text_checks import check_text
from backend.core.types import Event, GenerationError, GenerationParams, InvalidInputError

if TYPE_CHECKING:
    import torch

    from backend.evaluation.types import EvalConfig
    from backend.core.model_spec import ModelSpec

OptionsT = TypeVar("OptionsT")  # a task's options (a frozen dataclass of its own)
ResultT = TypeVar("ResultT")  # the result for one input text
# What preprocess hands forward, and forward hands postprocess: each handler's own (a tuple, a TypedDict...).
BatchT = TypeVar("BatchT", default=object)
OutputsT = TypeVar("OutputsT", default=object)

# A forward pass: the model itself, or ONNX Runtime's session (backend/engines/onnx_runtime.py); outputs by name,
# as transformers' ModelOutput (a dict) gives them.
Forward: TypeAlias = "Callable[..., Mapping[str, torch.Tensor]]"
Cell: TypeAlias = JSONScalar  # one value of a whole-file run's result column (structured results: JSON text)


class ModelClass(Protocol):
    """A transformers Auto* class (AutoModelForTokenClassification...): what loads a task's checkpoint."""

    def from_pretrained(self, pretrained_model_name_or_path: str, **options: object) -> HFModel: ...

MAX_TEXTS = 2048  # texts in one call (the API's list input; files go through backend/tasks/files.py in batches)
MAX_TOP_K = 50
MAX_BATCH_SIZE = 512


# ------------------------------------------------------------------------------------------------ requests


@dataclass(frozen=True)
class TaskInputs:
    """The texts a task works on; `questions` only for tasks that ask one per text (the texts are contexts)."""

    texts: tuple[str, ...]
    questions: Optional[tuple[str, ...]] = None

    def __len__(self) -> int:
        return len(self.texts)

    def part(self, start: int, stop: int) -> "TaskInputs":
        return TaskInputs(self.texts[start:stop], None if self.questions is None else self.questions[start:stop])


@dataclass(frozen=True)
class TaskRequest(Generic[OptionsT]):
    """Checked inputs and options; `batch_size` splits the inputs into forward passes (None: one pass)."""

    inputs: TaskInputs
    options: OptionsT
    batch_size: Optional[int] = None

    def parts(self) -> list["TaskRequest[OptionsT]"]:
        size = self.batch_size or max(1, len(self.inputs))
        return [replace(self, inputs=self.inputs.part(start, start + size))
                for start in range(0, len(self.inputs), size)]


@dataclass
class LoadContext:
    """What a handler is built from: the loaded model and tokenizer, the tokens the model takes, the lock every
    forward pass on these weights takes, the status notes the handler may add to, and where the checkpoint's
    other files are (`find_file(name)`: a path, or None when the checkpoint has no such file)."""

    model_id: str
    model: HFModel
    tokenizer: HFTokenizer
    max_length: int
    lock: threading.Lock = field(default_factory=threading.Lock)
    notes: list[str] = field(default_factory=list)
    find_file: Callable[[str], Optional[Path]] = lambda name: None


# ------------------------------------------------------------------------------------------------ checks


def whole_number(field: str, value: object, low: int, high: int) -> int:
    """`value` as an int in [low, high], or an error naming `field`."""
    if isinstance(value, bool) or not isinstance(value, (int, float)) or int(value) != value:
        raise refuse("whole_between", field, low=low, high=high, got=value)
    if not low <= int(value) <= high:
        raise refuse("between", field, low=low, high=high, got=int(value))
    return int(value)


def one_of(field: str, value: object, choices: Sequence[str]) -> str:
    if not isinstance(value, str) or value not in choices:
        raise InvalidInputError(f"{field}: one of {', '.join(choices)}, got {value!r}", field=field)
    return value


def check_texts(field: str, texts: object) -> tuple[str, ...]:
    """One text or a list of them (as a client sent them, unchecked), each checked like a chat message; errors
    name `field` (and the index)."""
    items = [texts] if isinstance(texts, str) else texts
    if not isinstance(items, (list, tuple)) or not items:
        raise InvalidInputError(f"{field}: give a text or a non-empty list of texts", field=field)
    if len(items) > MAX_TEXTS:
        raise InvalidInputError(f"{field}: at most {MAX_TEXTS} texts per call, got {len(items)}; use a file run",
                                field=field)
    checked: list[str] = []
    for index, text in enumerate(items):
        check_text(field if len(items) == 1 else f"{field}[{index}]", text)
        assert isinstance(text, str)  # check_text refused anything else
        checked.append(text)
    return tuple(checked)


# ------------------------------------------------------------------------------------------------ handler


class LoadedTask(ABC, Generic[OptionsT, ResultT]):
    """A task on one loaded model, as the engine holds it: a request in, one result per input out (the engine
    calls it with the model's lock held). `TaskHandler` below is the shape every task module implements.

    `forward_fn` is the model's forward pass (the model itself); `runtime: onnx` replaces it with ONNX Runtime's
    (backend/engines/onnx_runtime.py), so a handler's `forward` calls `self.forward_fn`, never the model directly.
    """

    def __init__(self, context: LoadContext) -> None:
        self.model = context.model
        self.tokenizer = context.tokenizer
        self.max_length = context.max_length
        self.lock = context.lock
        self.forward_fn: Forward = context.model

    @abstractmethod
    def __call__(self, request: TaskRequest[OptionsT]) -> list[ResultT]:
        """One result per input of `request`."""

    def use_forward(self, forward: Forward) -> None:
        """Routes forward passes through `forward` (ONNX Runtime) instead of PyTorch."""
        self.forward_fn = forward

    def run_forward(self, inputs: Mapping[str, torch.Tensor]) -> Mapping[str, torch.Tensor]:
        """`forward_fn` on `inputs` moved to the model's device, without autograd (call with the lock held)."""
        import torch

        device = getattr(self.model, "device", "cpu")
        with torch.inference_mode():
            return self.forward_fn(**{name: value.to(device) for name, value in inputs.items()})

    def model_inputs(self, encoded: Mapping[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        """What of a tokenizer's encoding the model takes (its `model_input_names`)."""
        return {name: encoded[name] for name in self.tokenizer.model_input_names if name in encoded}

    def release(self) -> None:
        """Drops the model (the engine is unloading it); call with the lock held."""
        self.model = UNLOADED_MODEL
        self.forward_fn = _unloaded


class TaskHandler(LoadedTask[OptionsT, ResultT], Generic[OptionsT, ResultT, BatchT, OutputsT]):
    """A task on one loaded model, in transformers' Pipeline shape. `__call__` runs the three steps over each
    batch of the request. `BatchT` is what preprocess gives forward, `OutputsT` what forward gives postprocess."""

    def __call__(self, request: TaskRequest[OptionsT]) -> list[ResultT]:
        results: list[ResultT] = []
        for part in request.parts():
            results.extend(self.postprocess(self.forward(self.preprocess(part)), part))
        return results

    @abstractmethod
    def preprocess(self, request: TaskRequest[OptionsT]) -> BatchT:
        """The model's inputs for one batch (tokenized, padded)."""

    @abstractmethod
    def forward(self, model_inputs: BatchT) -> OutputsT:
        """The forward pass: plain outputs (on the CPU) for postprocess."""

    @abstractmethod
    def postprocess(self, model_outputs: OutputsT, request: TaskRequest[OptionsT]) -> list[ResultT]:
        """One result per input of the batch."""


@runtime_checkable
class StreamingHandler(Protocol):
    """A handler that also streams one text's generated output (summarize, translate)."""

    def stream(self, request: TaskRequest[Any]) -> Generator[Event, None, None]:
        """Deltas, then one Final; closing the iterator stops the generation."""
        ...


def _unloaded(*args: object, **kwargs: object) -> NoReturn:
    raise GenerationError("the model was unloaded while running")


# ------------------------------------------------------------------------------------------------ spec


class TaskSpec(ABC, Generic[OptionsT, ResultT]):
    """One pipeline task, declared: the engine layer, the service, file runs, evaluation and the UI read it."""

    name: ClassVar[str]  # the registry task (models.yaml `tasks:`), also the API endpoint's name
    title_key: ClassVar[str]  # the UI's wording key for the task's sub-tab title (ui/i18n)
    architectures: ClassVar[tuple[str, ...]]  # config.json `architectures` suffixes it accepts
    not_architectures: ClassVar[tuple[str, ...]] = ()  # suffixes refused even when one above matches
    needs_words: ClassVar[Optional[str]] = None  # what it needs, in words (default: the suffixes)
    shares_entry_with: ClassVar[frozenset[str]] = frozenset()  # tasks one registry entry may do alongside it
    onnx: ClassVar[bool] = False  # its forward pass can run on ONNX Runtime (`runtime: onnx`)
    streams: ClassVar[bool] = False  # its handler also streams one text's output (`stream(request)`: events)
    text_field: ClassVar[str] = "text"  # the input's field name in errors
    asks_questions: ClassVar[bool] = False  # one question per text (the texts are contexts)
    columns: ClassVar[tuple[str, ...]]  # the columns a whole-file run adds, in `file_row`'s order
    file_stem: ClassVar[str]  # what a file run's download is called ("<file>-entities.csv")
    evaluation: ClassVar[Optional["EvalAdapter[Any, Any]"]] = None  # how an evaluation task scores it, if one does

    # ------------------------------------------------------------------------------- which checkpoints

    def serves(self, architecture: str) -> bool:
        """Whether a checkpoint of class `architecture` can do this task."""
        return architecture.endswith(self.architectures) and not (
            self.not_architectures and architecture.endswith(self.not_architectures))

    def needs(self) -> str:
        return self.needs_words or "a model of type *" + " / *".join(self.architectures)

    @abstractmethod
    def model_class(self, architectures: Sequence[str]) -> ModelClass:
        """The transformers Auto class that loads the checkpoint (imports transformers)."""

    # ------------------------------------------------------------------------------- input

    @abstractmethod
    # Each task names its own options: mypy lets an override narrow only this catch-all signature.
    def options(self, *args: Any, **raw: Any) -> OptionsT:
        """The task's options, checked; errors name the field."""

    def inputs(self, texts: object, questions: object = None) -> TaskInputs:
        """The inputs as a client sent them, checked; errors name the field (and the index in a list)."""
        return TaskInputs(check_texts(self.text_field, texts))

    def checked_options(self, raw: Mapping[str, object]) -> OptionsT:
        """`options(**raw)`, refusing an option this task does not have (naming it) instead of a TypeError."""
        accepted = inspect.signature(self.options).parameters
        unknown = [name for name in raw if name not in accepted]
        if unknown:
            raise InvalidInputError(f"{unknown[0]}: not an option of '{self.name}' (its options: "
                                    f"{', '.join(accepted) or 'none'})", field=unknown[0])
        return self.options(**raw)

    def check_model(self, request: TaskRequest[OptionsT], model: "ModelSpec") -> None:
        """Checks against the checkpoint's files, before anything is loaded (a mask token, a language pair)."""

    def request(self, model: "ModelSpec", texts: object, questions: object = None, batch_size: Optional[int] = None,
                **raw: object) -> TaskRequest[OptionsT]:
        """A checked request for `model`: inputs, options and the checkpoint checks, all before loading."""
        inputs = self.inputs(texts, questions)
        options = self.checked_options(raw)
        if batch_size is not None:
            batch_size = whole_number("batch_size", batch_size, 1, MAX_BATCH_SIZE)
        request = TaskRequest(inputs, options, batch_size)
        self.check_model(request, model)
        return request

    # ------------------------------------------------------------------------------- loading

    @abstractmethod
    def handler(self, context: LoadContext) -> LoadedTask[OptionsT, ResultT]:
        """The handler for a loaded model (may add status notes, or refuse the model with ModelLoadError)."""

    def handler_for(self, model: HFModel, tokenizer: HFTokenizer, max_length: int = 512,
                    folder: Optional[Path] = None) -> LoadedTask[OptionsT, ResultT]:
        """A handler outside the registry (tests, benchmarks): a model and tokenizer loaded by the caller, from
        `folder` when its other files matter (an embedder's pooling)."""
        def find_file(name: str) -> Optional[Path]:
            return folder / name if folder is not None and (folder / name).is_file() else None

        return self.handler(LoadContext(model_id="local", model=model, tokenizer=tokenizer, max_length=max_length,
                                        find_file=find_file))

    def local_request(self, texts: object, questions: object = None, batch_size: Optional[int] = None,
                      **raw: object) -> TaskRequest[OptionsT]:
        """A request checked without a registry entry (no checkpoint checks), for `handler_for`'s handlers."""
        return TaskRequest(self.inputs(texts, questions), self.checked_options(raw), batch_size)

    # ------------------------------------------------------------------------------- whole-file runs

    def file_options(self, model: "ModelSpec", raw: Mapping[str, object],
                     params: Optional[GenerationParams] = None) -> OptionsT:
        """Options for a whole-file run (`raw`: the run's options; `params`: generation parameters)."""
        return self.checked_options(raw)

    def usable(self, text: str, options: OptionsT) -> bool:
        """Whether one row can be processed at all (rows that cannot are left empty and counted)."""
        return True

    def loaded_options(self, model: "ModelSpec", options: OptionsT) -> OptionsT:
        """The file run's options once the model is loaded (what only its files on disk could say)."""
        return options

    @abstractmethod
    def file_row(self, result: ResultT) -> tuple[Cell, ...]:
        """One result as the values of `columns` (JSON text for structured results, so a CSV keeps them)."""


class EvalAdapter(ABC, Generic[OptionsT, ResultT]):
    """How an evaluation task (backend/evaluation) runs a pipeline task: its options for the run, a batch of
    examples as the task's inputs, and each result as the text the evaluation task's metric reads."""

    task: str  # the evaluation task's name ("ner", "question_answering", "summarization", ...)

    @abstractmethod
    def options(self, config: "EvalConfig", model: "ModelSpec") -> OptionsT:
        """Options for the run (refusing what the model cannot do before it loads)."""

    def inputs(self, inputs: Sequence[str], contexts: Optional[Sequence[str]]) -> TaskInputs:
        """A batch of examples as the task's inputs (contexts: the examples' context column)."""
        return TaskInputs(tuple(inputs), None)

    @abstractmethod
    def prediction(self, example_input: str, result: ResultT) -> str:
        """One result as the text the metric reads."""

    def reference(self, reference: str) -> str:
        """A reference (the data's column, as text) as the metric reads it."""
        return reference

    def notices(self, predictions: Sequence[Optional[str]], references: Sequence[str]) -> list[str]:
        """What the run's report should say about the predictions as a whole."""
        return []
