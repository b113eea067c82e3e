"""A GGUF model and its llama.cpp context, through llama-cpp-python's C bindings (the `llama_cpp` module).

The context holds `slots` sequences, each with its own `context` tokens of KV cache (`kv_unified` off: every
sequence has its own cells, so one long conversation cannot starve the others, and the memory is known at load):
backend/engines/llama_cpp_scheduler.py decodes one token of every running sequence in one `llama_decode` call.
The high-level `llama_cpp.Llama` class is not used: it owns one sequence and its own sampler, and the app needs
several sequences per step and its own sampling (backend/engines/llama_cpp_sampling.py).

ctypes calls release the GIL, so a decode step runs while Python threads (the server, the UI) carry on.
"""

from __future__ import annotations

import ctypes
import threading
from pathlib import Path
from types import ModuleType
from typing import Any, Optional, Sequence

import numpy as np

from backend.core.types import GenerationError, ModelLoadError
from backend.engines.cpu_threads import cpu_threads

DEFAULT_BATCH_TOKENS = 512  # tokens per llama_decode call: every running row's next token plus prompt chunks
KV_BYTES_PER_VALUE = 2  # the KV cache is float16 (llama.cpp's default type)


def physical_cores() -> int:
    """Threads for llama.cpp: WORKBENCH_LLAMA_CPP_THREADS, else the physical cores this process may use (extra
    hyper-threads slow llama.cpp's decode down, as they do PyTorch's)."""
    return cpu_threads("WORKBENCH_LLAMA_CPP_THREADS")


_BACKEND_READY = threading.Event()
_BACKEND_LOCK = threading.Lock()


def _init_backend(llama_cpp: ModuleType) -> None:
    """llama.cpp's process-wide set-up (its CPU backend and float16 tables), once."""
    with _BACKEND_LOCK:
        if not _BACKEND_READY.is_set():
            llama_cpp.llama_backend_init()
            _BACKEND_READY.set()


class GgufModel:
    """Weights, vocabulary, one context of `slots` sequences and a reusable batch. Not thread-safe: the
    scheduler's thread is the only one that decodes; tokenizing only reads the vocabulary."""

    def __init__(self, path: Path, *, slots: int, context: Optional[int], threads: int,
                 batch_tokens: int = DEFAULT_BATCH_TOKENS) -> None:
        import llama_cpp
        from llama_cpp import _logger

        _logger.set_verbose(False)  # llama.cpp's own log lines: errors only
        _init_backend(llama_cpp)
        self.lib = llama_cpp
        self.path = path
        self.threads = threads
        model_params = llama_cpp.llama_model_default_params()
        model_params.n_gpu_layers = 0
        self.model = llama_cpp.llama_model_load_from_file(str(path).encode("utf-8"), model_params)
        if not self.model:
            raise ModelLoadError(f"llama.cpp could not read {path} as a GGUF model (damaged, or an architecture "
                                 "this llama.cpp does not know)", field="source", params={"path": str(path)})
        self.ctx: Any = None
        self.batch: Any = None
        try:
            self.vocab = llama_cpp.llama_model_get_vocab(self.model)
            self.n_vocab = int(llama_cpp.llama_vocab_n_tokens(self.vocab))
            self.context_trained = int(llama_cpp.llama_model_n_ctx_train(self.model))
            wanted = min(context or self.context_trained, self.context_trained)
            context_params = llama_cpp.llama_context_default_params()
            context_params.n_ctx = wanted * slots
            context_params.n_seq_max = slots
            context_params.n_batch = context_params.n_ubatch = batch_tokens
            context_params.n_threads = context_params.n_threads_batch = threads
            context_params.kv_unified = False
            context_params.no_perf = True
            self.ctx = llama_cpp.llama_init_from_model(self.model, context_params)
            if not self.ctx:
                raise ModelLoadError(f"llama.cpp could not make a context of {slots} x {wanted} tokens for {path} "
                                     "(out of memory?); lower max_context or max_batch_size",
                                     field="max_context", params={"slots": slots, "context": wanted})
            self.memory = llama_cpp.llama_get_memory(self.ctx)
            self.slots = slots
            self.context = min(wanted, int(llama_cpp.llama_n_ctx_seq(self.ctx)))
            self.batch_tokens = batch_tokens
            self.batch = llama_cpp.llama_batch_init(batch_tokens, 0, 1)
            self.metadata = self._metadata()
        except BaseException:
            self.close()
            raise
        self.eog_ids = tuple(token for token in range(self.n_vocab) if llama_cpp.llama_vocab_is_eog(self.vocab, token))
        self.bos_id = int(llama_cpp.llama_vocab_bos(self.vocab))
        self.eos_id = int(llama_cpp.llama_vocab_eos(self.vocab))
        self.adds_bos = bool(llama_cpp.llama_vocab_get_add_bos(self.vocab))
        self._pieces: dict[int, bytes] = {}

    # ------------------------------------------------------------------------------------------ facts

    def _metadata(self) -> dict[str, str]:
        lib, values = self.lib, {}
        buffer = ctypes.create_string_buffer(1 << 16)
        for index in range(lib.llama_model_meta_count(self.model)):
            lib.llama_model_meta_key_by_index(self.model, index, buffer, len(buffer))
            key = buffer.value.decode("utf-8", "replace")
            size = lib.llama_model_meta_val_str_by_index(self.model, index, buffer, len(buffer))
            if size >= len(buffer):  # a long value (a chat template): read it whole
                large = ctypes.create_string_buffer(size + 1)
                lib.llama_model_meta_val_str_by_index(self.model, index, large, len(large))
                values[key] = large.value.decode("utf-8", "replace")
            else:
                values[key] = buffer.value.decode("utf-8", "replace")
        return values

    @property
    def chat_template(self) -> Optional[str]:
        return self.metadata.get("tokenizer.chat_template") or None

    def description(self) -> str:
        buffer = ctypes.create_string_buffer(256)
        self.lib.llama_model_desc(self.model, buffer, len(buffer))
        return buffer.value.decode("utf-8", "replace")

    def parameters(self) -> int:
        return int(self.lib.llama_model_n_params(self.model))

    def memory_bytes(self) -> int:
        """The weights plus the whole KV cache of every slot (allocated at load, whatever is in use)."""
        arch = self.metadata.get("general.architecture", "")

        def number(key: str, default: int) -> int:
            return int(self.metadata.get(f"{arch}.{key}", default))

        layers, width = number("block_count", 0), number("embedding_length", 0)
        heads = number("attention.head_count", 1) or 1
        kv_heads = number("attention.head_count_kv", heads)
        per_token = 2 * layers * width * kv_heads // heads * KV_BYTES_PER_VALUE
        return int(self.lib.llama_model_size(self.model)) + per_token * self.context * self.slots

    # ------------------------------------------------------------------------------------- tokens

    def tokenize(self, text: str, add_special: bool) -> list[int]:
        """Token ids of `text`; special tokens written in it (a chat template's markers) are parsed as such."""
        data = text.encode("utf-8")
        room = len(data) + 8
        tokens = (self.lib.llama_token * room)()
        count = self.lib.llama_tokenize(self.vocab, data, len(data), tokens, room, add_special, True)
        if count < 0:  # more tokens than bytes (can happen with added BOS / EOS): -count is the size needed
            room = -count
            tokens = (self.lib.llama_token * room)()
            count = self.lib.llama_tokenize(self.vocab, data, len(data), tokens, room, add_special, True)
        return list(tokens[:count])

    def piece(self, token: int) -> bytes:
        """A token's bytes as it appears in text (special tokens render as nothing), cached."""
        cached = self._pieces.get(token)
        if cached is None:
            cached = self._piece(token, special=False)
            self._pieces[token] = cached
        return cached

    def special_text(self, token: int) -> str:
        """A token's own text, special tokens included (e.g. '<|im_end|>')."""
        return self._piece(token, special=True).decode("utf-8", "replace")

    def _piece(self, token: int, special: bool) -> bytes:
        size = 64
        while True:
            buffer = ctypes.create_string_buffer(size)
            count = self.lib.llama_token_to_piece(self.vocab, token, buffer, size, 0, special)
            if count >= 0:
                return buffer.raw[:count]
            size = -count

    def detokenize(self, tokens: Sequence[int]) -> str:
        return b"".join(self.piece(int(token)) for token in tokens).decode("utf-8", "replace")

    # ------------------------------------------------------------------------------------ decoding

    def decode(self, entries: Sequence[tuple[int, int, int, bool]]) -> None:
        """One llama_decode over (token, position, sequence, wants logits) entries; GenerationError on failure."""
        batch = self.batch
        for index, (token, position, sequence, logits) in enumerate(entries):
            batch.token[index] = token
            batch.pos[index] = position
            batch.n_seq_id[index] = 1
            batch.seq_id[index][0] = sequence
            batch.logits[index] = logits
        batch.n_tokens = len(entries)
        status = self.lib.llama_decode(self.ctx, batch)
        if status != 0:
            raise GenerationError(f"llama_decode failed with status {status}"
                                  + (" (no room left in the KV cache)" if status == 1 else ""))

    def logits(self, index: int) -> np.ndarray:
        """The logits of the batch's `index`-th entry (a view into llama.cpp's buffer: valid until the next decode)."""
        pointer = self.lib.llama_get_logits_ith(self.ctx, index)
        return np.ctypeslib.as_array(pointer, shape=(self.n_vocab,))

    def forget(self, sequence: int) -> None:
        """Frees a sequence's KV cells for the slot's next row."""
        self.lib.llama_memory_seq_rm(self.memory, sequence, -1, -1)

    def close(self) -> None:
        lib = self.lib
        if self.batch is not None:
            lib.llama_batch_free(self.batch)
            self.batch = None
        if self.ctx:
            lib.llama_free(self.ctx)
            self.ctx = None
        if self.model:
            lib.llama_model_free(self.model)
            self.model = None
