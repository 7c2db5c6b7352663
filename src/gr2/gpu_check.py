"""GPU check: time each training and serving step of GR2 on one GPU, for the day a GPU is lent.

`python -m gr2.gpu_check --out DIR` (`make gpu-check OUT=DIR`) builds Qwen3-1.7B- and Qwen3-8B-shaped models
from their configs with random weights (bf16, the SID vocabulary added), and times on the GPU, each with its
peak memory:
- a mid-training step (causal LM loss) at `beauty-gpu`'s batch and sequence length;
- an SFT step with the decoupled loss (`gr2.train.sft.decoupled_nll`) at `beauty-gpu`'s batch and length;
- a CoT DAPO-like step: one group of constrained rollouts through HF generate (the serving decoder
  `gr2.serve.backends.LocalBackend`, sampled), then the token-level policy-gradient loss over them;
- a GR2-Direct SFT step (`gr2.train.direct`): the top trainable layers over the frozen layers' cached
  activations, the label logits and the listwise loss, one view at a time over a batch;
- the serving decoder (greedy constrained answers) at batch 1 and 16.
It writes DIR/gpu-check.json and DIR/gpu-check.md and prints the GPU-hours per stage of `beauty-gpu` these
times imply. Without a GPU it runs the same steps at tiny shapes (so the test suite keeps it working) and
says that its numbers are not GPU numbers.

Needs torch, transformers, pydantic and pyyaml (no kfp, TRL, vLLM or DeepSpeed). The tokenizer is a small
byte-level BPE trained here (no model hub): prompts and sequences are sized in its tokens, and the models'
vocabulary is Qwen3's tokenizer length plus the SID tokens, so the output layer costs what it will.
"""

from __future__ import annotations

import argparse
import gc
import gzip
import math
import random
import statistics
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path

import torch
from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
from transformers import AutoModelForCausalLM, PreTrainedTokenizerFast, Qwen3Config

from gr2.config import RunConfig, load_preset
from gr2.data.registry import data_root
from gr2.lm.vocab import add_sid_tokens, padded_size
from gr2.rank.direct import DirectPrompt, label_token_ids
from gr2.rank.frozen import FrozenLowerLayers
from gr2.serve.backends import LocalBackend
from gr2.sid.sidmap import SidMap
from gr2.storage.atomic import write_json_atomic, write_text_atomic
from gr2.train.checkpoint import trainable_parameters
from gr2.train.direct_losses import listwise_loss
from gr2.train.sft import RANKING, REASONING, decoupled_nll

QWEN3_TOKENIZER_LENGTH = 151_669  # tokens of the Qwen3 tokenizer; its checkpoints pad the matrix to 151,936
QWEN3_SHAPES = {  # from the models' config.json
    "qwen3-1.7b": {
        "hidden_size": 2048,
        "intermediate_size": 6144,
        "num_hidden_layers": 28,
        "num_attention_heads": 16,
        "num_key_value_heads": 8,
        "tie_word_embeddings": True,
    },
    "qwen3-8b": {
        "hidden_size": 4096,
        "intermediate_size": 12288,
        "num_hidden_layers": 36,
        "num_attention_heads": 32,
        "num_key_value_heads": 8,
        "tie_word_embeddings": False,
    },
}
TINY_SHAPE = {
    "hidden_size": 64,
    "intermediate_size": 128,
    "num_hidden_layers": 2,
    "num_attention_heads": 4,
    "num_key_value_heads": 2,
    "tie_word_embeddings": True,
}
CHATML = (
    "{% for message in messages %}<|im_start|>{{ message['role'] }}\n{{ message['content'] }}<|im_end|>\n"
    "{% endfor %}{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}"
)
SERVING_BATCHES = (1, 16)


@dataclass(frozen=True)
class Shapes:
    """Batch and sequence sizes of the timed steps."""

    midtrain_batch: int
    midtrain_length: int
    sft_batch: int
    sft_length: int
    prompt_tokens: int
    generations: int
    reasoning_tokens: int
    serving_reasoning_tokens: int
    candidates: int
    direct_batch: int
    direct_trainable_layers: int


@dataclass(frozen=True)
class Timing:
    model: str
    step: str
    shape: str
    seconds: float  # median of the timed repeats
    peak_gib: float  # peak GPU memory allocated in the step (0 on CPU)
    tokens: int  # tokens processed (training) or generated (decoding) per step

    @property
    def tokens_per_second(self) -> float:
        return self.tokens / self.seconds


def gpu_shapes(config: RunConfig) -> Shapes:
    """The preset's own batch and lengths; rollout and serving budgets as the preset would decode."""
    return Shapes(
        midtrain_batch=config.midtrain.per_device_train_batch_size,
        midtrain_length=config.midtrain.max_length,
        sft_batch=config.sft.per_device_train_batch_size,
        sft_length=config.sft.max_length,
        prompt_tokens=1024,
        generations=config.dapo.num_generations,
        reasoning_tokens=config.dapo.max_completion_length,
        serving_reasoning_tokens=config.dapo.reasoning_tokens,
        candidates=config.prerank.k,
        direct_batch=config.direct_sft.batch_size,
        direct_trainable_layers=config.direct_sft.trainable_layers,
    )


TINY_SHAPES = Shapes(2, 64, 2, 96, 48, 2, 8, 8, candidates=3, direct_batch=2, direct_trainable_layers=1)


def training_tokenizer(seed: int) -> PreTrainedTokenizerFast:
    """A byte-level BPE with ChatML turns, trained on seeded random words (no hub needed)."""
    rng = random.Random(seed)
    alphabet = "abcdefghijklmnopqrstuvwxyz"
    words = ["".join(rng.choice(alphabet) for _ in range(rng.randint(2, 9))) for _ in range(2000)]
    lines = [" ".join(rng.choice(words) for _ in range(20)) for _ in range(500)]
    bpe = Tokenizer(models.BPE())
    bpe.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    bpe.decoder = decoders.ByteLevel()
    specials = ["<|endoftext|>", "<|im_start|>", "<|im_end|>"]
    trainer = trainers.BpeTrainer(
        vocab_size=2000, special_tokens=specials, initial_alphabet=pre_tokenizers.ByteLevel.alphabet()
    )
    bpe.train_from_iterator(lines, trainer)
    tokenizer = PreTrainedTokenizerFast(tokenizer_object=bpe, eos_token="<|im_end|>", pad_token="<|endoftext|>")
    tokenizer.chat_template = CHATML
    return tokenizer


def candidate_sids(count: int, seed: int) -> SidMap:
    """`count` candidates with random 4-level codes of a 256-code book."""
    rng = random.Random(seed)
    codes = {f"item{n}": (rng.randrange(256), rng.randrange(256), rng.randrange(256), n) for n in range(count)}
    return SidMap(levels=4, codebook_size=256, codes=codes)


def labels_as_tokens(tokenizer, count: int) -> list[str]:
    """The direct-mode labels (A, B, ...): one token each, as in a real tokenizer's vocabulary."""
    labels = [chr(ord("A") + slot) for slot in range(count)]
    tokenizer.add_tokens([label for label in labels if len(tokenizer.encode(label, add_special_tokens=False)) != 1])
    return labels


def build_model(shape: dict, vocab_size: int, device: torch.device, dtype: torch.dtype):
    config = Qwen3Config(**shape, head_dim=shape["hidden_size"] // shape["num_attention_heads"], vocab_size=vocab_size)
    with device:
        model = AutoModelForCausalLM.from_config(config, dtype=dtype)
    return model


def synchronise(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize()


def timed(step: Callable[[], None], device: torch.device, repeats: int) -> tuple[float, float]:
    """Median seconds of `repeats` runs after one warm-up run, and the peak memory (GiB) over them."""
    step()
    synchronise(device)
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats()
    seconds = []
    for _ in range(repeats):
        started = time.perf_counter()
        step()
        synchronise(device)
        seconds.append(time.perf_counter() - started)
    peak = torch.cuda.max_memory_allocated() / 2**30 if device.type == "cuda" else 0.0
    return statistics.median(seconds), peak


def optimiser_step(model, loss: torch.Tensor, optimiser: torch.optim.Optimizer) -> None:
    loss.backward()
    optimiser.step()
    optimiser.zero_grad(set_to_none=True)


def midtrain_step(model, optimiser, batch: int, length: int, vocab: int, device: torch.device) -> Callable[[], None]:
    ids = torch.randint(0, vocab, (batch, length), device=device)

    def step() -> None:
        optimiser_step(model.train(), model(input_ids=ids, labels=ids).loss, optimiser)

    return step


def sft_step(model, optimiser, batch: int, length: int, vocab: int, device: torch.device) -> Callable[[], None]:
    """Decoupled loss over an answer that is the last half of each sequence: reasoning, then the ranking."""
    ids = torch.randint(0, vocab, (batch, length), device=device)
    spans = torch.zeros_like(ids)
    spans[:, length // 2 :] = REASONING
    spans[:, length - length // 8 :] = RANKING
    labels = ids.masked_fill(spans == 0, -100)

    def step() -> None:
        loss = decoupled_nll(
            model.train()(input_ids=ids).logits, labels, spans, lambda_reasoning=0.5, lambda_ranking=1.0
        )
        optimiser_step(model, loss, optimiser)

    return step


def prompt_text(tokenizer, tokens: int, seed: int) -> str:
    """A chat prompt of about `tokens` tokens of random words."""
    rng = random.Random(seed)
    vocab = [token for token in tokenizer.get_vocab() if token.isalpha()]
    body = tokenizer.convert_tokens_to_string([rng.choice(vocab) for _ in range(tokens)])
    return tokenizer.apply_chat_template(
        [{"role": "user", "content": body}], add_generation_prompt=True, tokenize=False
    )


def dapo_step(model, optimiser, tokenizer, sids: SidMap, shapes: Shapes, device: torch.device) -> Callable[[], None]:
    """One group of sampled constrained rollouts (as `gr2.train.rollouts` samples them: the serving decoder in
    eval mode), random rewards normalised in the group (the reward is string parsing, negligible here), and
    DAPO's token-level policy-gradient loss (first update: ratio 1)."""
    prompt = prompt_text(tokenizer, shapes.prompt_tokens, seed=1)
    options = [list(sids.codes.values())] * shapes.generations
    generator = torch.Generator().manual_seed(0)

    def step() -> None:
        answers = LocalBackend(model, tokenizer).answer(
            [prompt] * shapes.generations, options, shapes.reasoning_tokens, math.inf, temperature=1.0
        )
        model.train()
        prompt_ids = tokenizer(prompt, add_special_tokens=False)["input_ids"]
        rows = [prompt_ids + tokenizer(a.text, add_special_tokens=False)["input_ids"] for a in answers]
        width = max(map(len, rows))
        ids = torch.tensor([row + [tokenizer.pad_token_id] * (width - len(row)) for row in rows], device=device)
        completion = torch.zeros_like(ids, dtype=torch.bool)
        for index, row in enumerate(rows):
            completion[index, len(prompt_ids) : len(row)] = True
        rewards = torch.rand(shapes.generations, generator=generator, device="cpu").to(device)
        advantages = (rewards - rewards.mean()) / (rewards.std() + 1e-4)
        log_probs = torch.log_softmax(model(input_ids=ids).logits[:, :-1].float(), dim=-1)
        token_log_probs = log_probs.gather(-1, ids[:, 1:, None]).squeeze(-1)
        mask = completion[:, 1:]
        ratio = torch.exp(token_log_probs - token_log_probs.detach())
        loss = -(ratio * advantages[:, None])[mask].sum() / mask.sum()
        optimiser_step(model, loss, optimiser)

    return step


def direct_step(model, tokenizer, labels: list[str], shapes: Shapes, device: torch.device) -> Callable[[], None]:
    """GR2-Direct's SFT step on `direct_batch` views of one prompt: the frozen layers' activations are computed
    once per prompt and reused for every epoch, so only the top layers run per step (as in training)."""
    split = FrozenLowerLayers(model, shapes.direct_trainable_layers, label_token_ids(tokenizer, labels))
    optimiser = torch.optim.AdamW(trainable_parameters(split.model).values(), lr=1e-6)
    text = prompt_text(tokenizer, shapes.prompt_tokens, seed=3)
    token_ids = tuple(tokenizer(text, add_special_tokens=False)["input_ids"])
    prompt = DirectPrompt(text, tuple(range(len(labels))), token_ids)  # answer readout: labels at the last position
    lower = split.lower(token_ids)

    def step() -> None:
        model.train()
        for view in range(shapes.direct_batch):
            loss = listwise_loss(split.label_scores(lower, prompt), view % shapes.candidates, 1.0)
            (loss / shapes.direct_batch).backward()
        optimiser.step()
        optimiser.zero_grad(set_to_none=True)

    return step


def serving_step(model, tokenizer, sids: SidMap, shapes: Shapes, batch: int) -> Callable[[], None]:
    prompts = [prompt_text(tokenizer, shapes.prompt_tokens, seed=2 + row) for row in range(batch)]
    options = [list(sids.codes.values())] * batch

    def step() -> None:
        LocalBackend(model, tokenizer).answer(prompts, options, shapes.serving_reasoning_tokens, math.inf)

    return step


def check_model(name: str, shape: dict, shapes: Shapes, device: torch.device, repeats: int) -> list[Timing]:
    tokenizer = training_tokenizer(seed=0)
    sids = candidate_sids(shapes.candidates, seed=0)
    add_sid_tokens(tokenizer, sids)
    labels = labels_as_tokens(tokenizer, shapes.candidates)
    vocab = padded_size(
        QWEN3_TOKENIZER_LENGTH + len(sids.vocabulary()) if device.type == "cuda" else len(tokenizer), 64
    )
    dtype = torch.bfloat16 if device.type == "cuda" else torch.float32
    model = build_model(shape, vocab, device, dtype)
    model.gradient_checkpointing_enable()  # as the GPU preset trains
    model.config.use_cache = True  # generation keeps its KV cache; checkpointing only recomputes in training
    optimiser = torch.optim.AdamW(model.parameters(), lr=1e-6)  # states in the weights' dtype (bf16 on GPU)
    steps = {
        "midtrain step": (
            f"{shapes.midtrain_batch} x {shapes.midtrain_length} tokens",
            shapes.midtrain_batch * shapes.midtrain_length,
            lambda: midtrain_step(model, optimiser, shapes.midtrain_batch, shapes.midtrain_length, vocab, device),
        ),
        "sft step (decoupled loss)": (
            f"{shapes.sft_batch} x {shapes.sft_length} tokens",
            shapes.sft_batch * shapes.sft_length,
            lambda: sft_step(model, optimiser, shapes.sft_batch, shapes.sft_length, vocab, device),
        ),
        "dapo step (constrained rollouts)": (
            f"{shapes.generations} rollouts, prompt {shapes.prompt_tokens}, reasoning {shapes.reasoning_tokens}",
            shapes.generations * shapes.reasoning_tokens,
            lambda: dapo_step(model, optimiser, tokenizer, sids, shapes, device),
        ),
        "direct sft step (label logits)": (
            f"{shapes.direct_batch} views, prompt {shapes.prompt_tokens}, top {shapes.direct_trainable_layers} layers",
            shapes.direct_batch * shapes.prompt_tokens,
            lambda: direct_step(model, tokenizer, labels, shapes, device),  # freezes the lower layers: last
        ),
        **{
            f"serving, batch {batch}": (
                f"{batch} x prompt {shapes.prompt_tokens}, reasoning {shapes.serving_reasoning_tokens}",
                batch * shapes.serving_reasoning_tokens,
                lambda batch=batch: serving_step(model, tokenizer, sids, shapes, batch),
            )
            for batch in SERVING_BATCHES
        },
    }
    timings = []
    for step, (shape_text, tokens, make_step) in steps.items():
        seconds, peak = timed(make_step(), device, repeats)
        timings.append(Timing(name, step, shape_text, seconds, peak, tokens))
        print(f"{name:12} {step:34} {seconds:9.3f} s  peak {peak:6.1f} GiB  ({shape_text})", flush=True)
    return timings


def training_sequences(config: RunConfig) -> int:
    """Users of the preset's dataset: each gives one leave-one-out training sequence."""
    with gzip.open(data_root() / config.data.dataset / "sequences.tsv.gz", "rt") as lines:
        return sum(1 for _ in lines) - 1


def gpu_hours(timings: list[Timing], config: RunConfig, sequences: int, sft_traces: int) -> dict[str, float]:
    """GPU-hours per training stage of `config` for its student (the 8B shape): micro-batches x seconds each.
    Mid-training's examples per epoch follow from the task mixture (one sequential example per training
    sequence); DAPO's rollout groups are max_steps x prompts_per_step per process."""
    of = {t.step: t.seconds for t in timings if t.model == "qwen3-8b"}
    processes = config.dapo.processes or 1
    examples = sequences / (config.midtrain.tasks.sequential / sum(config.midtrain.tasks.weights().values()))
    midtrain = examples * config.midtrain.num_train_epochs / config.midtrain.per_device_train_batch_size
    sft = sft_traces * config.sft.num_train_epochs / config.sft.per_device_train_batch_size
    dapo_groups = config.dapo.max_steps * config.dapo.prompts_per_step * processes
    hours = {
        "midtrain": midtrain * of["midtrain step"] / 3600,
        "sft": sft * of["sft step (decoupled loss)"] / 3600,
        "dapo": dapo_groups * of["dapo step (constrained rollouts)"] / 3600,
    }
    if config.dapo.run_naive_ablation:
        hours["dapo_naive"] = hours["dapo"]
    return hours


def markdown_table(timings: list[Timing], on_gpu: bool) -> str:
    header = "" if on_gpu else "**CPU run at tiny shapes: these are not GPU numbers.**\n\n"
    rows = [
        "| model | step | shape | seconds | tokens/s | peak GiB |",
        "| --- | --- | --- | --- | --- | --- |",
        *(
            f"| {t.model} | {t.step} | {t.shape} | {t.seconds:.3f} | {t.tokens_per_second:,.0f} | {t.peak_gib:.1f} |"
            for t in timings
        ),
    ]
    return header + "\n".join(rows) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m gr2.gpu_check", description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", type=Path, required=True, help="folder for gpu-check.json and gpu-check.md")
    parser.add_argument("--preset", default="beauty-gpu", help="preset whose shapes and step counts are used")
    parser.add_argument("--repeats", type=int, default=3, help="timed runs of each step (after one warm-up)")
    parser.add_argument(
        "--sft-traces", type=int, default=5000, help="accepted traces assumed for SFT (known only after traces)"
    )
    args = parser.parse_args(argv)
    config = load_preset(args.preset)
    on_gpu = torch.cuda.is_available()
    device = torch.device("cuda" if on_gpu else "cpu")
    torch.manual_seed(0)
    if on_gpu:
        checks = {name: (shape, gpu_shapes(config)) for name, shape in QWEN3_SHAPES.items()}
    else:
        print("no GPU: tiny shapes on the CPU; these numbers are not GPU numbers")
        checks = {name: (TINY_SHAPE, TINY_SHAPES) for name in QWEN3_SHAPES}
    timings: list[Timing] = []
    for name, (shape, shapes) in checks.items():
        timings += check_model(name, shape, shapes, device, args.repeats)
        gc.collect()  # the checked model is released with its frame; give its GPU memory back too
        if on_gpu:
            torch.cuda.empty_cache()
    sequences = training_sequences(config)
    hours = gpu_hours(timings, config, sequences, args.sft_traces)
    report = {
        "device": torch.cuda.get_device_name() if on_gpu else "cpu (tiny shapes: not GPU numbers)",
        "preset": config.name,
        "timings": [asdict(t) | {"tokens_per_second": t.tokens_per_second} for t in timings],
        "gpu_hours": hours,
        "assumptions": {"training_sequences": sequences, "sft_traces": args.sft_traces},
    }
    write_json_atomic(args.out / "gpu-check.json", report)
    write_text_atomic(args.out / "gpu-check.md", markdown_table(timings, on_gpu))
    qualifier = "" if on_gpu else " (from CPU timings at tiny shapes: not GPU numbers)"
    print(f"\nestimated GPU-hours per stage of {config.name}{qualifier}:")
    for stage, value in hours.items():
        print(f"  {stage:12} {value:10.2f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
