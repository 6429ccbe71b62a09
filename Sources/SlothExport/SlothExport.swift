// SlothExport: merged safetensors, GGUF, Ollama (issue 7).
