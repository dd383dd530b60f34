# Sourced by the benchmark scripts (bash): sets blas_env, the `env` arguments a benchmark
# runs under, and blas_note, a line for the results when it names a kernel. Benchmarks run
# with OPENBLAS_CORETYPE and OPENBLAS_L2_SIZE unset, so OpenBLAS picks its kernel from the
# CPU's family and model. A CPU newer than the OpenBLAS (Debian 12's 0.3.21 does not know
# Emerald Rapids, family 6 model 207) gets the generic Prescott kernel, a quarter of the
# machine's rate, which would make every ratio to the sgemm floor meaningless; then, and
# only then, the newest kernel the CPU's instruction set runs is named
# (BENCH_CORETYPE=NAME names one regardless). Needs $build with trainer/percept built.
blas_env=(-u OPENBLAS_CORETYPE -u OPENBLAS_L2_SIZE)
blas_note=""
blas_core="$(env "${blas_env[@]}" OPENBLAS_VERBOSE=2 "$build/trainer/percept" --version 2>&1 |
    sed -n 's/^Core: *//p' | head -1)"
blas_named="${BENCH_CORETYPE:-}"
if [ -z "$blas_named" ] && [ "$blas_core" = Prescott ]; then
    case " $(grep -m1 '^flags' /proc/cpuinfo) " in
        *" avx512f "*) blas_named=SkylakeX ;;
        *" avx2 "*) blas_named=Haswell ;;
    esac
    [ -z "$blas_named" ] ||
        blas_note="OpenBLAS does not know this CPU (family $(sed -n 's/^cpu family\t*: //p' /proc/cpuinfo | head -1) model $(sed -n 's/^model\t*: //p' /proc/cpuinfo | head -1)) and would run its generic $blas_core kernel; OPENBLAS_CORETYPE=$blas_named names the newest kernel its instruction set runs"
elif [ -n "$blas_named" ]; then
    blas_note="named by BENCH_CORETYPE=$blas_named (OpenBLAS's own choice: $blas_core)"
fi
if [ -n "$blas_named" ]; then
    blas_env=(-u OPENBLAS_L2_SIZE OPENBLAS_CORETYPE="$blas_named")
    echo "BLAS kernel: $blas_note" >&2
fi
