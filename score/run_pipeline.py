"""The local engine's overlap: input -> tokenize -> predict -> output, as threads joined by small
bounded queues.

Polars, the fast tokenizer and onnxruntime all release the GIL, so reading and tokenizing the
next chunks overlaps the model running on this one. At most QUEUE_CHUNKS chunks wait between two
stages, which bounds memory whatever the file's size.
"""

from __future__ import annotations

import queue
import threading
from collections.abc import Callable, Iterator
from typing import Any

QUEUE_CHUNKS = 1  # the next chunk waits while this one runs: enough to overlap the stages
POLL_S = 0.1  # how often a waiting stage looks at the stop flag
_DONE = object()


class Pipeline:
    """Runs `produce -> tokenize -> predict -> write`; `predict` runs on the calling thread."""

    def __init__(
        self,
        produce: Iterator[Any],
        tokenize: Callable[[Any], Any],
        predict: Callable[[Any], Any],
        write: Callable[[Any], None],
    ) -> None:
        self.stop = threading.Event()
        self.errors: list[BaseException] = []
        read_q, token_q, self.write_q = (queue.Queue(QUEUE_CHUNKS) for _ in range(3))
        self.token_q = token_q
        self.predict = predict
        self.threads = [
            threading.Thread(target=self._feed, args=(produce, read_q)),
            threading.Thread(target=self._stage, args=(read_q, tokenize, token_q)),
            threading.Thread(target=self._stage, args=(self.write_q, write, None)),
        ]
        for thread in self.threads:
            thread.daemon = True  # never keep a dying process alive

    def run(self) -> None:
        """Return when the writer has written the last chunk; raise the first stage's error."""
        for thread in self.threads:
            thread.start()
        try:
            self._stage(self.token_q, self.predict, self.write_q)
            self._join(self.threads)  # no error: the writer drains; after one, all stop soon
        finally:  # an error anywhere, or KeyboardInterrupt here: every stage stops
            self.stop.set()
            # Each stage's current call is short (a read block, 1024 texts to tokenize, one row
            # group), so waiting is quick; nobody writes while the caller removes the file, and
            # no thread is left inside native code when the interpreter exits.
            self._join(self.threads)
        if self.errors:
            raise self.errors[0]

    def _feed(self, produce: Iterator[Any], out: queue.Queue) -> None:
        try:
            for item in produce:
                if not self._put(out, item):
                    break
            else:
                self._put(out, _DONE)
        except BaseException as e:
            self._fail(e)
        finally:
            close = getattr(produce, "close", None)
            if close is not None:
                close()  # drops Polars' batch iterator, which ends its query

    def _stage(self, source: queue.Queue, fn: Callable, out: queue.Queue | None) -> None:
        try:
            while (item := self._get(source)) is not _DONE:
                result = fn(item)
                if out is not None and not self._put(out, result):
                    return
            if out is not None:
                self._put(out, _DONE)
        except BaseException as e:  # on the calling thread too: run() re-raises it after the join
            self._fail(e)

    def _get(self, source: queue.Queue) -> Any:
        while not self.stop.is_set():
            try:
                return source.get(timeout=POLL_S)
            except queue.Empty:
                continue
        return _DONE

    def _put(self, out: queue.Queue, item: Any) -> bool:
        while not self.stop.is_set():
            try:
                out.put(item, timeout=POLL_S)
                return True
            except queue.Full:
                continue
        return False

    def _fail(self, error: BaseException) -> None:
        self.errors.append(error)
        self.stop.set()

    def _join(self, threads: list[threading.Thread]) -> None:
        for thread in threads:
            while thread.is_alive():
                thread.join(POLL_S)
