"""The command line as a shell user meets it (argument validation lives in test_experiment.py)."""

import os
import subprocess
import sys
import textwrap


class TestClosedPipe:
    def test_reader_closing_the_pipe_is_not_a_traceback(self, tmp_path):
        # `kdcore check … | head`: the reader goes away while kdcore still writes. A pipe whose read end is
        # already closed makes every write fail, deterministically.
        losses = tmp_path / "losses.py"
        losses.write_text(
            textwrap.dedent(
                """
                import numpy as np

                def missing_t2(student_logits, teacher_logits, T):
                    s, t = student_logits / T, teacher_logits / T
                    log_s = s - np.log(np.exp(s).sum(-1, keepdims=True))
                    log_t = t - np.log(np.exp(t).sum(-1, keepdims=True))
                    return float((np.exp(log_t) * (log_t - log_s)).sum(-1).mean())
                """
            )
        )
        read_end, write_end = os.pipe()
        os.close(read_end)
        try:
            process = subprocess.run(
                [sys.executable, "-m", "kdcore", "check", f"{losses}:missing_t2", "--framework", "numpy"],
                stdout=write_end,
                stderr=subprocess.PIPE,
                timeout=120,
                check=False,
            )
        finally:
            os.close(write_end)
        assert process.stderr == b""
        assert process.returncode == 141
