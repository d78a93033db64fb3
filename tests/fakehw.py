"""Hardware as the precision rules see it, faked: no such machine is needed to test the rules."""

from facegan.devices import Accelerator

AVX2 = Accelerator("cpu", "an AVX2-only CPU", fast_bf16=False, fast_fp16=False)
AVX512_BF16 = Accelerator("cpu", "a CPU with AVX512-BF16", fast_bf16=True, fast_fp16=False)
AMX = Accelerator("cpu", "a Xeon with AMX", fast_bf16=True, fast_fp16=False)
T4 = Accelerator("cuda", "Tesla T4", fast_bf16=False, fast_fp16=True)
A100 = Accelerator("cuda", "NVIDIA A100", fast_bf16=True, fast_fp16=True)
P100 = Accelerator("cuda", "Tesla P100", fast_bf16=False, fast_fp16=False)
