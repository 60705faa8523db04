"""Composable logits processing (spec §12): processors legalised to ops over flashinfer.sampling,
compiled with fusion rules into as few kernels as possible.

    pipe = LogitsPipe([Temperature(), Softmax(), TopK(), TopP(), Sample()])
    ids = pipe(logits, temperature=0.7, top_k=50, top_p=0.9)
"""
from .compiler import CompileError, Compiler, FusionRule, compile_pipeline
from .legalization import LegalizationError, legalize_processors
from .op import Op, ParameterizedOp
from .pipeline import LogitsPipe
from .processors import LogitsProcessor, MinP, Sample, Softmax, Temperature, TopK, TopP
from .types import TaggedTensor, TensorType

__all__ = [
    "LogitsPipe", "LogitsProcessor", "Temperature", "Softmax", "TopK", "TopP", "MinP", "Sample", "TensorType",
    "TaggedTensor", "Op", "ParameterizedOp", "FusionRule", "Compiler", "compile_pipeline", "CompileError",
    "LegalizationError", "legalize_processors",
]
