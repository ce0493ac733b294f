"""Inference runtimes: LiteRT (TFLite) and ONNX Runtime, behind one small session interface."""
