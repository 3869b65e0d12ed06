#!/usr/bin/env python3
"""Loads the configs peft-plan emits (--emit) with the real engines' own loaders, for its tests.

Each file is read the way the engine reads it, so a misspelt key, a wrong type or an
inconsistent value is refused by the library itself, and what the library parsed is reported
for the tests to compare with the plan:

- deepspeed: `deepspeed.runtime.config.DeepSpeedConfig(dict, mpu=...)`, the class
  `deepspeed.initialize` builds. Its sections are pydantic models with `extra="forbid"`; the
  top level is a plain dict, so keys DeepSpeed never reads are reported as an error too. The
  world size comes through the `mpu` argument (`get_data_parallel_world_size`), so
  `train_batch_size = micro × accumulation × GPUs` is checked for the planned GPU count.
- accelerate: `load_config_from_file` (unknown top-level keys are refused), then what
  `accelerate launch --config_file` does next: its argument parser (every `fsdp_config` and
  `deepspeed_config` key must be one of its options, else it would be ignored silently),
  `_validate_launch_command`, the environment its launcher hands to the training processes
  (`prepare_multi_gpu_env` / `prepare_deepspeed_cmd_env` / `prepare_simple_launcher_cmd_env`),
  and in that environment the plugin the training process builds (`FullyShardedDataParallelPlugin`
  or `DeepSpeedPlugin`). Nothing is launched.
- trl: the script is run with `__name__` other than "__main__", which defines `model_id`,
  `model_kwargs`, `bnb_config`, `peft_config` and `training_args` without loading a model or
  data; the real objects' attributes are reported, with the optimizer class Transformers
  would build (`Trainer.get_optimizer_cls_and_kwargs`), Accelerate's FSDP plugin built from
  `training_args.fsdp_plugin_args`, and Transformers' DeepSpeed cross-check
  (`hf_deepspeed_config.mismatches`). With "config_path", the PEFT config is applied to that
  model built on the meta device and the trainable/all counts are reported.

No GPU is needed. Two hardware probes are answered for the machine the job is planned for,
since this one may have no GPU: Transformers' `is_torch_bf16_gpu_available` (TrainingArguments
refuses bf16=True without a bf16 GPU) and DeepSpeed's `comm.get_rank` (0: the config is read as
rank 0 of the planned job; without it DeepSpeed assumes world size 1 and ignores `mpu`).

Input (stdin): JSON list of {"id", "format": "deepspeed"|"accelerate"|"trl", "text",
"gpus" (DeepSpeed's world size, default 1), "files" ({name: text} written beside the file,
e.g. ds_config.json for a trl script), "config_path" (trl: a config.json to count on),
"expect" ({key: value}, optional: differences are listed under "mismatches")}.
Output (stdout): JSON {id: {parsed values} or {"error": "..."}} and "_versions".
"""
import json
import math
import os
import sys
import tempfile
import warnings

warnings.filterwarnings("ignore")
os.environ.setdefault("DS_BUILD_OPS", "0")



def fsdp_fields(p, plain):
    """What Accelerate's FSDP plugin was built with, as the tests compare it."""
    return {
        "version": p.fsdp_version,
        "reshard_after_forward": plain(p.reshard_after_forward),
        "offload_params": type(p.cpu_offload).__name__ == "CPUOffloadPolicy" or bool(getattr(p.cpu_offload, "offload_params", False)),
        "auto_wrap_policy": plain(p.auto_wrap_policy),
        "state_dict_type": plain(p.state_dict_type),
        "cpu_ram_efficient_loading": p.cpu_ram_efficient_loading,
        "activation_checkpointing": p.activation_checkpointing,
    }

def main():
    cases = json.load(sys.stdin)
    # Only the JSON goes to stdout: the libraries' own prints and log lines (DeepSpeed logs
    # to stdout) go to stderr, from Python and from C alike.
    result_out = os.fdopen(os.dup(1), "w")
    os.dup2(2, 1)
    sys.stdout = sys.stderr
    import accelerate
    import deepspeed
    import peft
    import torch
    import transformers
    import trl

    out = {"_versions": {"torch": torch.__version__, "transformers": transformers.__version__, "peft": peft.__version__,
                         "accelerate": accelerate.__version__, "deepspeed": deepspeed.__version__, "trl": trl.__version__}}
    runners = {"deepspeed": deepspeed_case, "accelerate": accelerate_case, "trl": trl_case}
    for case in cases:
        saved_env, saved_cwd = dict(os.environ), os.getcwd()
        try:
            with tempfile.TemporaryDirectory() as folder:
                os.chdir(folder)
                for name, text in (case.get("files") or {}).items():
                    with open(os.path.join(folder, name), "w") as f:
                        f.write(text)
                result = runners[case["format"]](case, folder)
            expect = case.get("expect") or {}
            wrong = {k: {"expected": v, "parsed": result.get(k)} for k, v in expect.items() if result.get(k) != v}
            if wrong:
                result["mismatches"] = wrong
            out[case["id"]] = result
        except Exception as exc:  # reported per case, never hidden
            out[case["id"]] = {"error": f"{type(exc).__name__}: {exc}".strip()}
        finally:
            os.chdir(saved_cwd)
            os.environ.clear()
            os.environ.update(saved_env)
    json.dump(out, result_out, indent=1, sort_keys=True, default=str, allow_nan=False)
    result_out.close()


def plain(value):
    """A JSON-friendly copy: enums by name, dtypes and callables by name, tuples and sets as lists."""
    import enum
    import torch
    if isinstance(value, enum.Enum):  # string enums by value ("FSDP", "cpu"), the others by name ("FULL_SHARD")
        return value.value if isinstance(value.value, str) else value.name
    if isinstance(value, torch.dtype):
        return str(value).replace("torch.", "")
    if isinstance(value, (list, tuple)):
        return [plain(v) for v in value]
    if isinstance(value, set):
        return sorted(plain(v) for v in value)
    if isinstance(value, dict):
        return {str(k): plain(v) for k, v in value.items()}
    if callable(value):
        return getattr(value, "__name__", type(value).__name__)
    if isinstance(value, float) and not math.isfinite(value):
        return str(value)  # JSON has no inf (DeepSpeed's steps_per_print default)
    if value is None or isinstance(value, (bool, int, float, str)):
        return value
    return str(value)


class Recording(dict):
    """A config dict that records which keys its reader looks at; what it never reads, it ignores."""

    def __init__(self, *args, read=None, **kwargs):
        super().__init__(*args, **kwargs)
        self.read = set() if read is None else read  # shared by shallow copies (copy.copy)

    def __getitem__(self, key):
        self.read.add(key)
        return dict.__getitem__(self, key)

    def get(self, key, default=None):
        self.read.add(key)
        return dict.get(self, key, default)

    def __contains__(self, key):
        self.read.add(key)
        return dict.__contains__(self, key)

    def unread(self):
        return sorted(set(self) - self.read)


# MARK: DeepSpeed

def deepspeed_case(case, folder):
    import deepspeed.comm
    from deepspeed.runtime.config import DeepSpeedConfig

    gpus = int(case.get("gpus", 1))

    class DataParallel:  # DeepSpeed's `mpu` protocol, data-parallel part only
        def get_data_parallel_world_size(self):
            return gpus

    text = case["text"]
    config = Recording(json.loads(text, object_pairs_hook=no_duplicates))
    get_rank = deepspeed.comm.get_rank
    deepspeed.comm.get_rank = lambda group=None: 0  # rank 0 of the planned job (see the module doc)
    try:
        ds = DeepSpeedConfig(config, mpu=DataParallel())
    finally:
        deepspeed.comm.get_rank = get_rank
    unread = config.unread()
    if unread:
        raise ValueError(f"keys DeepSpeed {deepspeed.__version__} never reads: {unread}")
    zero = ds.zero_config
    offload_opt = zero.offload_optimizer.device if zero.offload_optimizer is not None else "none"
    offload_par = zero.offload_param.device if zero.offload_param is not None else "none"
    return {
        "world_size": ds.world_size,
        "train_batch_size": ds.train_batch_size,
        "train_micro_batch_size_per_gpu": ds.train_micro_batch_size_per_gpu,
        "gradient_accumulation_steps": ds.gradient_accumulation_steps,
        "gradient_clipping": ds.gradient_clipping,
        "zero_stage": int(ds.zero_optimization_stage),
        "offload_optimizer_device": plain(offload_opt),
        "offload_optimizer_pin_memory": zero.offload_optimizer.pin_memory if zero.offload_optimizer is not None else None,
        "offload_param_device": plain(offload_par),
        "gather_16bit_weights_on_model_save": zero.gather_16bit_weights_on_model_save,
        "bf16_enabled": ds.bfloat16_config.enabled,
        "fp16_enabled": ds.float16_config.enabled,
        "optimizer_name": ds.optimizer_name,
        "optimizer_params": plain(ds.optimizer_params),
        "zero_force_ds_cpu_optimizer": ds.zero_force_ds_cpu_optimizer,
    }


def no_duplicates(pairs):
    keys = [k for k, _ in pairs]
    duplicated = sorted({k for k in keys if keys.count(k) > 1})
    if duplicated:
        raise ValueError(f"duplicate keys: {duplicated}")
    return dict(pairs)


# MARK: Accelerate

def accelerate_case(case, folder):
    from accelerate.commands.config.config_args import load_config_from_file
    from accelerate.commands.launch import _validate_launch_command, launch_command_parser
    from accelerate.utils import DeepSpeedPlugin, FullyShardedDataParallelPlugin
    from accelerate.utils.launch import prepare_deepspeed_cmd_env, prepare_multi_gpu_env, prepare_simple_launcher_cmd_env

    path = os.path.join(folder, "accelerate.yaml")
    with open(path, "w") as f:
        f.write(case["text"])
    config = load_config_from_file(path)  # ClusterConfig; refuses unknown top-level keys

    # What `accelerate launch --config_file accelerate.yaml train.py` does before it starts processes.
    args = launch_command_parser().parse_args(["--config_file", path, "train.py"])
    options = set(vars(args))
    unknown = [k for k in config.fsdp_config if (k if k.startswith("fsdp") else "fsdp_" + k) not in options]
    unknown += [k for k in config.deepspeed_config if k not in options]
    if unknown:
        raise ValueError(f"keys `accelerate launch` has no option for (ignored silently): {sorted(unknown)}")
    args, defaults, mp_from_config = _validate_launch_command(args)
    result = {
        "distributed_type": plain(config.distributed_type),
        "num_processes": args.num_processes,
        "mixed_precision": args.mixed_precision,
        "use_cpu": config.use_cpu,
    }
    if args.use_deepspeed:
        # As launch_command() sets it before calling the DeepSpeed launcher.
        fields = list(defaults.deepspeed_config.keys()) + (["mixed_precision"] if mp_from_config else [])
        args.deepspeed_fields_from_accelerate_config = ",".join(fields)
        _, env = prepare_deepspeed_cmd_env(args)
    elif args.use_fsdp or args.multi_gpu:
        env = prepare_multi_gpu_env(args)
    else:
        _, env = prepare_simple_launcher_cmd_env(args)
    result["env_mixed_precision"] = env.get("ACCELERATE_MIXED_PRECISION")
    os.environ.update(env)  # the training process's environment (restored after the case)
    if args.use_fsdp:
        p = FullyShardedDataParallelPlugin()
        result["fsdp"] = fsdp_fields(p, plain)
    if args.use_deepspeed:
        p = DeepSpeedPlugin()
        result["deepspeed"] = {
            "zero_stage": p.zero_stage,
            "offload_optimizer_device": p.offload_optimizer_device,
            "offload_param_device": p.offload_param_device,
            "gradient_accumulation_steps": p.gradient_accumulation_steps,
            "gradient_clipping": p.gradient_clipping,
            "zero3_init_flag": p.zero3_init_flag,
            "zero3_save_16bit_model": p.zero3_save_16bit_model,
            "config": plain(p.deepspeed_config),
        }
    return result


# MARK: TRL

def trl_case(case, folder):
    import transformers.training_args
    from accelerate.utils import FullyShardedDataParallelPlugin
    from transformers import Trainer, TrainingArguments
    from transformers.integrations.deepspeed import unset_hf_deepspeed_config

    transformers.training_args.is_torch_bf16_gpu_available = lambda: True  # the planned GPU (see the module doc)
    # Transformers ignores fsdp_config keys it does not know: record which ones it reads.
    fsdp_unread = []
    process_fsdp_args = TrainingArguments._process_fsdp_args

    def recording_fsdp_args(self):
        if not isinstance(self.fsdp_config, dict):
            return process_fsdp_args(self)
        given = list(self.fsdp_config)
        self.fsdp_config = Recording(self.fsdp_config)
        try:
            return process_fsdp_args(self)
        finally:
            fsdp_unread.extend(k for k in given if k.removeprefix("fsdp_") not in self.fsdp_config.read)

    scope = {"__name__": "peft_plan_emitted", "__file__": os.path.join(folder, "train.py")}
    TrainingArguments._process_fsdp_args = recording_fsdp_args
    try:
        exec(compile(case["text"], "train.py", "exec"), scope)
    finally:
        TrainingArguments._process_fsdp_args = process_fsdp_args
    # TrainingArguments(deepspeed=ZeRO-3) registers itself so that models built later are
    # partitioned while built (deepspeed.zero.Init); this check builds none, so forget it.
    unset_hf_deepspeed_config()
    for name in ("model_id", "model_kwargs", "bnb_config", "peft_config", "training_args"):
        if name not in scope:
            raise NameError(f"the script defines no `{name}` at module level")
    a = scope["training_args"]
    result = {"model_id": scope["model_id"], "model_kwargs": plain({k: v for k, v in scope["model_kwargs"].items()
                                                                   if k != "quantization_config"})}
    result["training_args"] = {
        "class": type(a).__name__,
        "per_device_train_batch_size": a.per_device_train_batch_size,
        "gradient_accumulation_steps": a.gradient_accumulation_steps,
        "num_train_epochs": a.num_train_epochs,
        "max_steps": a.max_steps,
        "learning_rate": a.learning_rate,
        "max_grad_norm": a.max_grad_norm,
        "bf16": a.bf16,
        "fp16": a.fp16,
        "mixed_precision": a.mixed_precision,
        "activation_checkpointing": a.activation_checkpointing,
        "use_reentrant": (a.activation_checkpointing_kwargs or {}).get("use_reentrant"),
        # what TRL's SFTTrainer reads to turn selective checkpointing on
        "selective": (a.gradient_checkpointing_kwargs or {}).get("selective"),
        "activation_offloading": getattr(a, "activation_offloading", False),
        "use_liger_kernel": a.use_liger_kernel,
        "padding_free": getattr(a, "padding_free", None),
        "optim": plain(a.optim),
        "optim_args": a.optim_args,
        "max_length": getattr(a, "max_length", None),
        "packing": getattr(a, "packing", None),
        "deepspeed": a.deepspeed,
        "fsdp": bool(a.fsdp),
    }
    # the preference and RL trainers' own fields (DPOConfig, KTOConfig, ORPOConfig, CPOConfig, GRPOConfig)
    for name in ("beta", "precompute_ref_log_probs", "loss_type", "cpo_alpha", "num_generations", "num_iterations", "max_completion_length",
                 "use_vllm", "vllm_mode", "vllm_gpu_memory_utilization", "vllm_max_model_length", "generation_batch_size",
                 "steps_per_generation"):
        if hasattr(a, name):
            result["training_args"][name] = plain(getattr(a, name))
    cls, kwargs = Trainer.get_optimizer_cls_and_kwargs(a)
    result["optimizer"] = {"class": f"{cls.__module__}.{cls.__name__}", "kwargs": plain(kwargs)}
    if a.deepspeed:
        # Transformers' cross-check of ds_config.json against the arguments, at the planned
        # world size (this process alone is a world of 1).
        from transformers.integrations.deepspeed import HfTrainerDeepSpeedConfig

        class AtPlannedWorldSize:
            world_size = int(case.get("gpus", 1))

            def __getattr__(self, name):
                return getattr(a, name)

        ds = HfTrainerDeepSpeedConfig(a.deepspeed)
        ds.trainer_config_process(AtPlannedWorldSize())
        unset_hf_deepspeed_config()
        result["deepspeed"] = {"zero_stage": ds.get_value("zero_optimization.stage"), "mismatches": list(ds.mismatches)}
    if fsdp_unread:
        raise ValueError(f"fsdp_config keys Transformers never reads: {sorted(set(fsdp_unread))}")
    if a.fsdp:
        p = FullyShardedDataParallelPlugin(**a.fsdp_plugin_args)
        result["fsdp"] = fsdp_fields(p, plain)
    b = scope["bnb_config"]
    if b is not None:
        result["bnb"] = {
            "class": type(b).__name__,
            "load_in_4bit": b.load_in_4bit,
            "quant_type": b.bnb_4bit_quant_type,
            "double_quant": b.bnb_4bit_use_double_quant,
            "compute_dtype": plain(b.bnb_4bit_compute_dtype),
            "quant_storage": plain(b.bnb_4bit_quant_storage),
        }
    pc = scope["peft_config"]
    if pc is not None:
        fields = ("r", "lora_alpha", "lora_dropout", "target_modules", "use_dora", "feedforward_modules",
                  "num_virtual_tokens", "prefix_projection", "encoder_hidden_size")
        result["peft"] = {"class": type(pc).__name__, "peft_type": plain(pc.peft_type), "task_type": plain(pc.task_type)}
        for f in fields:
            if hasattr(pc, f):
                v = getattr(pc, f)
                result["peft"][f] = sorted(v) if isinstance(v, (set, list)) else plain(v)
        kwargs = scope.get("peft_model_kwargs", {})
        result["peft_model_kwargs"] = plain(kwargs)
        if case.get("config_path"):
            result["peft"]["counts"] = count(case["config_path"], pc, kwargs, scope["model_kwargs"].get("dtype"))
    return result


def count(config_path, peft_config, peft_model_kwargs=None, dtype=None):
    """Trainable and all parameters after get_peft_model, on the meta device (as peft_reference.py),
    and the trainable parameters' bytes with the model loaded in the script's dtype."""
    import copy
    import peft
    import torch
    from transformers import AutoConfig, AutoModelForCausalLM
    with open(config_path) as f:
        config_dict = json.load(f)
    with tempfile.TemporaryDirectory() as folder:
        with open(os.path.join(folder, "config.json"), "w") as f:
            json.dump(config_dict, f)
        cfg = AutoConfig.from_pretrained(folder)
    with torch.device("meta"):
        model = AutoModelForCausalLM.from_config(cfg, **({"dtype": dtype} if dtype is not None else {}))
    peft_model = peft.get_peft_model(model, copy.deepcopy(peft_config), **(peft_model_kwargs or {}))
    trainable, total = peft_model.get_nb_trainable_parameters()
    trainable_bytes = sum(p.numel() * p.element_size() for p in peft_model.parameters() if p.requires_grad)
    return {"trainable": trainable, "all": total, "trainable_bytes": trainable_bytes}


if __name__ == "__main__":
    from peft_reference import require
    require("torch", "transformers", "peft", "deepspeed", "accelerate", "trl")
    main()
