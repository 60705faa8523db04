"""flashinfer.logits_processor (spec §12): legalisation, compilation/fusion, errors, runtime
parameters, and pipe-vs-direct-op agreement."""
import pytest
import torch

import flashinfer
from flashinfer.logits_processor import (
    CompileError, Compiler, FusionRule, LegalizationError, LogitsPipe, MinP, Op, ParameterizedOp, Sample, Softmax,
    TaggedTensor, Temperature, TensorType, TopK, TopP, compile_pipeline, legalize_processors,
)
from flashinfer.logits_processor import op as lp_ops
from flashinfer_ops.reference import sampling as ref
from helpers import HAS_GPU

DEV = "cuda" if HAS_GPU else "cpu"


def _logits(b=6, v=200):
    return torch.randn(b, v, device=DEV) * 3


def _names(ops):
    return [type(o).__name__ for o in ops]


def test_default_fusions():
    pipe = LogitsPipe([Temperature(), Softmax(), TopK(joint_topk_topp=True), TopP(), Sample()])
    assert pipe.initial_type == TensorType.LOGITS
    assert _names(pipe.ops) == ["TemperatureOp", "SoftmaxOp", "ProbsTopKOp", "TopPOp", "ProbsSampleOp"]
    assert _names(pipe.compiled_ops) == ["FusedTemperatureSoftmaxOp", "FusedProbsTopKTopPSampleOp"]
    assert _names(LogitsPipe([Softmax(), TopK(), Sample()]).compiled_ops) == ["SoftmaxOp", "FusedProbsTopKSampleOp"]
    assert _names(LogitsPipe([Softmax(), TopK(), TopP(), Sample()]).compiled_ops) == [
        "SoftmaxOp", "ProbsTopKOp", "FusedProbsTopPSampleOp"]
    assert _names(LogitsPipe([MinP(), Sample()], input_type=TensorType.PROBS).compiled_ops) == ["FusedProbsMinPSampleOp"]
    assert _names(LogitsPipe([TopK(), Sample()], input_type=TensorType.LOGITS).compiled_ops) == [
        "LogitsTopKOp", "LogitsSampleOp"]
    assert "compiled_ops" in repr(pipe)


def test_input_type_inference_and_errors():
    with pytest.raises(ValueError, match="Pipeline creation failed: .*Cannot infer input type"):
        LogitsPipe([TopK(), Sample()])
    with pytest.raises(ValueError, match="Pipeline creation failed"):
        LogitsPipe([])
    with pytest.raises(ValueError, match="Pipeline creation failed"):
        LogitsPipe([TopP(), Sample()], input_type=TensorType.LOGITS)
    with pytest.raises(ValueError, match="Pipeline creation failed"):
        LogitsPipe([Softmax(), Sample(), TopP()])
    with pytest.raises(LegalizationError):
        legalize_processors([Temperature()], TensorType.PROBS)


def test_compile_errors_and_validity_checks():
    ops = [lp_ops.SoftmaxOp(), lp_ops.ProbsSampleOp(), lp_ops.TopPOp()]
    with pytest.raises(CompileError):
        compile_pipeline(ops)
    with pytest.raises(CompileError, match="type mismatch"):
        compile_pipeline([lp_ops.SoftmaxOp(), lp_ops.SoftmaxOp()])

    def no_min_p(ops):
        if any(isinstance(o, lp_ops.MinPOp) for o in ops):
            raise CompileError("MinP is banned here")

    with pytest.raises(ValueError, match="Pipeline creation failed: MinP is banned"):
        LogitsPipe([Softmax(), MinP(), Sample()], custom_validity_checks=[no_min_p])
    pipe = LogitsPipe([Softmax(), MinP(), Sample()], compile=False)
    assert pipe.compiled_ops is None
    with pytest.raises(ValueError, match="Compilation failed: MinP is banned"):
        pipe.compile(custom_validity_checks=[no_min_p])


def test_single_softmax_check_directly():
    from flashinfer.logits_processor.compiler import check_single_softmax

    with pytest.raises(CompileError, match="at most one Softmax"):
        check_single_softmax([lp_ops.FusedTemperatureSoftmaxOp(), lp_ops.SoftmaxOp()])


def test_custom_fusion_rule():
    class TempSampleOp(ParameterizedOp):
        IN = TensorType.LOGITS
        OUT = TensorType.INDICES

        def __call__(self, tensor, **kwargs):
            t = self._get_param("temperature", kwargs)
            return TaggedTensor.indices(flashinfer.sampling_from_logits(tensor.data / t))

    rule = FusionRule((lp_ops.TemperatureOp, lp_ops.LogitsSampleOp), lambda w: True,
                      lambda w: TempSampleOp(**w[0].default_params), prio=50)
    pipe = LogitsPipe([Temperature(), Sample()], custom_fusion_rules=[rule])
    assert _names(pipe.compiled_ops) == ["TempSampleOp"]
    out = pipe(_logits(), temperature=0.5)
    assert out.shape == (6,) and out.dtype == torch.int32
    # a guard that refuses leaves the ops unfused
    never = FusionRule(rule.pattern, lambda w: False, rule.build, prio=50)
    assert _names(LogitsPipe([Temperature(), Sample()], custom_fusion_rules=[never]).compiled_ops) == [
        "TemperatureOp", "LogitsSampleOp"]


@pytest.mark.parametrize("compiled", [True, False])
def test_temperature_softmax_scalar_and_per_row(compiled):
    x = _logits()
    t = torch.rand(6, device=DEV) + 0.2
    pipe = LogitsPipe([Temperature(), Softmax()], compile=compiled)
    torch.testing.assert_close(pipe(x, temperature=0.7), flashinfer.softmax(x, 0.7), rtol=1e-5, atol=1e-6)
    torch.testing.assert_close(pipe(x, temperature=t), ref.softmax(x, t), rtol=1e-5, atol=1e-6)


def test_temperature_validation():
    pipe = LogitsPipe([Temperature(), Softmax()])
    with pytest.raises(ValueError, match="Error executing operator 0 .*temperature"):
        pipe(_logits(), temperature=1)
    with pytest.raises(ValueError, match="Missing required parameter: temperature"):
        pipe(_logits())


def test_filters_equal_direct_ops():
    x = _logits()
    p = torch.softmax(x, -1)
    assert torch.equal(LogitsPipe([TopP()])(p, top_p=0.6), flashinfer.top_p_renorm_probs(p, 0.6))
    assert torch.equal(LogitsPipe([TopK()], input_type=TensorType.PROBS)(p, top_k=9), flashinfer.top_k_renorm_probs(p, 9))
    xi = x.masked_fill(torch.rand_like(x) < 0.3, float("-inf"))
    assert torch.equal(LogitsPipe([TopK()], input_type=TensorType.LOGITS)(xi, top_k=9), flashinfer.top_k_mask_logits(xi, 9))
    mp = LogitsPipe([MinP()])(p, min_p=0.1)
    torch.testing.assert_close(mp, ref.filtered_distribution("min_p", p, min_p=0.1))


def test_constructor_params_and_runtime_override():
    p = torch.softmax(_logits(), -1)
    pipe = LogitsPipe([TopK(top_k=3), Sample()], input_type=TensorType.PROBS)
    idx = torch.arange(6, device=DEV, dtype=torch.int32).repeat(30)
    out = pipe(p, indices=idx)
    assert out.shape == (180,)
    assert ref.top_k_mask(p, 3)[idx.long(), out.long()].all()
    out = pipe(p, top_k=1, indices=idx)
    assert ref.top_k_mask(p, 1)[idx.long(), out.long()].all()


def test_runtime_kwargs_are_consumed_by_the_first_op():
    seen = []

    class Probe(ParameterizedOp):
        IN = TensorType.PROBS
        OUT = TensorType.PROBS

        def __call__(self, tensor, **kwargs):
            seen.append(self._get_param("top_p", kwargs, required=False, default="default"))
            return tensor

    rule_free = [lp_ops.TopPOp(), Probe(top_p="ctor")]
    comp = compile_pipeline(rule_free)
    assert _names(comp) == ["TopPOp", "Probe"]
    from flashinfer.logits_processor.pipeline import LogitsPipe as LP

    pipe = LP([TopP()])
    pipe._compiled_ops = comp
    pipe(torch.softmax(_logits(), -1), top_p=0.5)
    assert seen == ["ctor"]


@pytest.mark.parametrize("procs,kind,kw", [
    ([Softmax(), TopK(), Sample()], "top_k", dict(top_k=8)),
    ([Softmax(), TopP(), Sample()], "top_p", dict(top_p=0.6)),
    ([Softmax(), MinP(), Sample()], "min_p", dict(min_p=0.2)),
    ([Softmax(), TopK(joint_topk_topp=True), TopP(), Sample()], "joint", dict(top_k=8, top_p=0.6)),
    ([Softmax(), TopK(), TopP(), Sample()], "top_k_first", dict(top_k=8, top_p=0.6)),
])
@pytest.mark.parametrize("compiled", [True, False])
def test_sampling_pipes_stay_in_support(procs, kind, kw, compiled):
    x = _logits()
    p = torch.softmax(x, -1)
    idx = torch.arange(6, device=DEV, dtype=torch.int32).repeat(20)
    out = LogitsPipe(procs, compile=compiled)(x, indices=idx, **kw)
    if kind in ("joint", "top_k_first"):
        sup = ref.sampler_support("top_k_top_p", p, top_k=8, top_p=0.6, filter_apply_order="joint" if kind == "joint" else "top_k_first")
    else:
        sup = ref.sampler_support(kind, p, top_k=kw.get("top_k"), top_p=kw.get("top_p"), min_p=kw.get("min_p"))
    assert sup[idx.long(), out.long()].all()


def test_tagged_tensor():
    t = torch.randn(3, 4)
    tt = TaggedTensor.logits(t)
    assert tt.type == TensorType.LOGITS and tt.shape == (3, 4) and tt.size(1) == 4 and tt.dtype == torch.float32
    assert torch.equal(torch.softmax(tt, -1), torch.softmax(t, -1))
    assert TaggedTensor.probs(t).type == TensorType.PROBS and TaggedTensor.indices(t).type == TensorType.INDICES
    assert issubclass(ParameterizedOp, Op)


def test_sample_on_probs_and_logits_with_generator():
    x = _logits()
    g = torch.Generator(device=DEV).manual_seed(3)
    a = LogitsPipe([Sample()], input_type=TensorType.LOGITS)(x, generator=g)
    g = torch.Generator(device=DEV).manual_seed(3)
    b = LogitsPipe([Sample()], input_type=TensorType.LOGITS)(x, generator=g)
    assert torch.equal(a, b)
    p = LogitsPipe([Sample()], input_type=TensorType.PROBS)(torch.softmax(x, -1))
    assert p.shape == (6,)
