# PyTorch's best setup on this machine (sourced by run.sh, infer_bench.sh, finetune_bench.sh).
# Debian's python3-torch does its linear algebra through the system BLAS: point it at the
# OpenMP OpenBLAS, so that one OpenMP runtime runs. That OpenBLAS (0.3.21) picks its kernels
# by CPU model, and on a model newer than itself falls back to SSE3 "Prescott" code, 3x
# slower for PyTorch on an Intel Xeon of 2024 (bench/README.md, "Xeon: training"); then
# OPENBLAS_CORETYPE names the kernels the CPU can run (SkylakeX with AVX-512, else Haswell
# with AVX2), unless the caller set it. TORCH_ENV is the env prefix of every PyTorch run.
OPENBLAS_OMP=/usr/lib/x86_64-linux-gnu/openblas-openmp
TORCH_ENV=(env "LD_LIBRARY_PATH=$OPENBLAS_OMP${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}")
if [[ -z ${OPENBLAS_CORETYPE:-} ]]; then
    torch_blas_core=$(/usr/bin/python3 -c 'import ctypes, sys
b = ctypes.CDLL(sys.argv[1] + "/libopenblas.so.0")
b.openblas_get_corename.restype = ctypes.c_char_p
print(b.openblas_get_corename().decode())' "$OPENBLAS_OMP" 2>/dev/null || echo unknown)
    case ${torch_blas_core,,} in
    prescott | core2 | penryn | dunnington | nehalem | atom | sandybridge | unknown)
        if grep -qw avx512f /proc/cpuinfo; then
            TORCH_ENV+=(OPENBLAS_CORETYPE=SkylakeX)
        elif grep -qw avx2 /proc/cpuinfo && grep -qw fma /proc/cpuinfo; then
            TORCH_ENV+=(OPENBLAS_CORETYPE=Haswell)
        fi
        ;;
    esac
    [[ ${#TORCH_ENV[@]} -gt 2 ]] && echo "# PyTorch's OpenBLAS: ${TORCH_ENV[2]} (it chose $torch_blas_core for this CPU)" >&2
fi
