"""Several kernels share one answer log: two stream at once while a third reads it."""

from __future__ import annotations

import threading
from pathlib import Path

from kernel_driver import KernelDriver, start_magic_kernel

from ollama_magic.testing import FakeOllama, Gate, Reply


def test_two_kernels_stream_at_once_while_a_third_reads_the_log(tmp_path: Path) -> None:
    gates = [Gate(), Gate()]
    words = [[f"first{i} " for i in range(6)], [f"second{i} " for i in range(6)]]
    with FakeOllama(models=("llama3.2",)) as fake:
        env = {"OLLAMA_HOST": fake.host, "OLLAMA_MAGIC_HOME": str(tmp_path)}
        # Each kernel's request takes the next scripted reply, in the order they arrive.
        fake.enqueue(
            *(Reply.answer(w, gate=g, gate_after=3) for w, g in zip(words, gates, strict=True))
        )
        with (
            start_magic_kernel(env) as one,
            start_magic_kernel(env) as two,
            start_magic_kernel(env) as reader,
        ):
            runs: dict[str, object] = {}

            def ask(name: str, kernel: KernelDriver) -> None:
                runs[name] = kernel.execute(f"%%ollama llama3.2 -o answer\nAsk {name}.")

            threads = []
            try:
                for index, (name, kernel) in enumerate((("one", one), ("two", two))):
                    thread = threading.Thread(target=ask, args=(name, kernel))
                    thread.start()
                    threads.append(thread)
                    assert gates[index].wait_reached(60)  # this kernel is mid-answer
                # Both answers are streaming; a third kernel reads the log meanwhile.
                during = reader.value(
                    "sorted((r.prompt, r.status) for r in "
                    "get_ipython().run_line_magic('ollama', 'log'))"
                )
            finally:
                for gate in gates:
                    gate.open()
                for thread in threads:
                    thread.join(timeout=60)
            assert during == [("Ask one.", "streaming"), ("Ask two.", "streaming")]
            texts = {
                name: kernel.value("str(answer)") for name, kernel in (("one", one), ("two", two))
            }
            after = reader.value(
                "sorted((r.prompt, r.status, r.text) for r in "
                "get_ipython().run_line_magic('ollama', 'log'))"
            )
    assert sorted(texts.values()) == sorted("".join(w) for w in words)
    assert after == [
        ("Ask one.", "complete", texts["one"]),
        ("Ask two.", "complete", texts["two"]),
    ]
