#!/usr/bin/env python3
"""Token lengths of a JSONL dataset, as a histogram `peft-plan --lengths FILE` reads.

Each line of the dataset is one JSON object, tokenised as TRL's SFTTrainer would see it:
  - "messages": a conversation, rendered with the tokenizer's chat template;
  - "prompt" and "completion": the two concatenated (lists of messages: through the chat template);
  - otherwise the text field (--field, default "text").
Text and completions get the EOS token appended where they lack it, as TRL does.
The tokenizer is a local folder or file the Transformers AutoTokenizer loads (the model's
own; nothing is downloaded unless a Hub id is given and the network allows it).

Output (stdout or --out): one line per distinct length, "LENGTH COUNT", shortest first,
after a comment line saying what was read. Lines that are not valid JSON objects, or lack
the field, stop the script with the line number (exit status 1): a silently smaller
histogram would understate the plan.

Usage: .venv/bin/python scripts/token_lengths.py --tokenizer PATH --data data.jsonl [--field text] [--out lengths.txt]
"""
import argparse
import collections
import json
import os
import sys


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--tokenizer", required=True, help="tokenizer folder (or Hub id) for AutoTokenizer")
    ap.add_argument("--data", required=True, help="JSONL file, one example per line")
    ap.add_argument("--field", default="text", help="text field of language-modelling examples (default: text)")
    ap.add_argument("--out", help="write the histogram here instead of stdout")
    a = ap.parse_args()

    if not os.path.isfile(a.data):
        fail(f"--data {a.data}: no such file")
    try:
        from transformers import AutoTokenizer
        from transformers.utils import logging as hf_logging
        hf_logging.set_verbosity_error()
        tok = AutoTokenizer.from_pretrained(a.tokenizer)
    except Exception as exc:  # reported as one line, never a traceback
        fail(f"--tokenizer {a.tokenizer}: cannot load it ({type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''})")

    counts = collections.Counter()
    with open(a.data, encoding="utf-8") as f:
        for number, line in enumerate(f, 1):
            if not line.strip():
                continue
            try:
                example = json.loads(line)
            except json.JSONDecodeError as exc:
                fail(f"{a.data} line {number}: not valid JSON ({exc.msg})")
            if not isinstance(example, dict):
                fail(f"{a.data} line {number}: not a JSON object")
            counts[length(tok, example, a.field, a.data, number)] += 1
    if not counts:
        fail(f"{a.data}: no examples")

    total = sum(counts.values())
    lines = [f"# token lengths of {total} examples of {os.path.basename(a.data)} ({tok.__class__.__name__})"]
    lines += [f"{n} {c}" for n, c in sorted(counts.items())]
    text = "\n".join(lines) + "\n"
    if a.out:
        tmp = a.out + ".partial"
        with open(tmp, "w", encoding="utf-8") as f:
            f.write(text)
        os.replace(tmp, a.out)   # never a half-written file
    else:
        sys.stdout.write(text)


def length(tok, example, field, path, number):
    if "messages" in example:
        if not isinstance(example["messages"], list):
            fail(f"{path} line {number}: \"messages\" is not a list")
        if not getattr(tok, "chat_template", None):
            fail(f"{path} line {number}: a conversation, but the tokenizer has no chat template")
        ids = tok.apply_chat_template(example["messages"], tokenize=True)
        if isinstance(ids, dict) or hasattr(ids, "keys"):
            ids = ids["input_ids"]
        return len(ids)
    if "prompt" in example and "completion" in example:
        prompt, completion = example["prompt"], example["completion"]
        if isinstance(prompt, list) and isinstance(completion, list):
            # conversational prompt-completion: the chat template over both, as TRL renders it
            return length(tok, {"messages": prompt + completion}, field, path, number)
        return len(tok(with_eos(tok, str(prompt) + str(completion)))["input_ids"])
    if field not in example:
        fail(f"{path} line {number}: no \"{field}\" field (nor messages, nor prompt and completion)")
    return len(tok(with_eos(tok, str(example[field])))["input_ids"])


def with_eos(tok, text):
    """TRL's SFTTrainer appends the EOS token to language-modelling text and completions that
    lack it (trl/trainer/sft_trainer.py, add_eos, TRL 1.16.0)."""
    eos = tok.eos_token
    return text if not eos or text.endswith(eos) else text + eos


def fail(message):
    sys.stderr.write(f"token_lengths: {message}\n")
    sys.exit(1)


if __name__ == "__main__":
    main()
