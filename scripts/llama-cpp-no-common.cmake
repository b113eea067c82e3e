# Included by CMake right after llama.cpp's own project() call when llama-cpp-python is compiled by
# scripts/install-test-deps.sh (CMAKE_ARGS: -DCMAKE_PROJECT_llama.cpp_INCLUDE=<this file>).
#
# llama-cpp-python's CMakeLists.txt forces LLAMA_BUILD_COMMON on, so a -D on the command line cannot turn it off;
# this runs after that and before llama.cpp reads the option. The common library (and the cpp-httplib it links)
# is about a third of the compile, and the Python package never loads it: llama_cpp loads only libllama and the
# ggml libraries (plus libmtmd for image chat handlers, not built either: -DLLAVA_BUILD=OFF). Nothing else changes:
# the same libllama, compiled with the same flags.
set(LLAMA_BUILD_COMMON OFF CACHE BOOL "llama: build common utils library" FORCE)
