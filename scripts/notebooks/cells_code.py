"""Code cells of the tutorial (shared by both languages); comments are translated by key."""

IMPORTS = '''\
%matplotlib inline
import functools
import os
import time
import types
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
from IPython.display import display

from graphcast_zero import catalog, config, data, evaluation, fetch, plotting, rollout, synthetic
from graphcast_zero import paths as data_paths
from graphcast_zero.checkpoint import load_checkpoint
from graphcast_zero.errors import InputError
from graphcast_zero.graph_cache import assemble_predictor
from graphcast_zero.loss import loss_and_diagnostics, loss_and_grads
from graphcast_zero.model.graphcast import describe, init_params
from graphcast_zero.predictor import resolve_precision
from graphcast_zero.statistics import load_statistics
from graphcast_zero.train_loop import default_optimizer, make_train_step
from graphcast_zero.sources import open_dataset
from graphcast_zero.validation import check_dataset
from graphcast_zero.workflow import use_compilation_cache

try:
    import ipywidgets as widgets
except ImportError:  # @@widgets-optional
    widgets = None


def choice(description, options, value):
    """A dropdown when ipywidgets is installed, else the fixed default; `.value` either way."""
    if widgets is None:
        return types.SimpleNamespace(value=value)
    dropdown = widgets.Dropdown(
        options=options, value=value, description=description,
        style={"description_width": "initial"},
    )
    display(dropdown)
    return dropdown


print(f"JAX {jax.__version__}, backend {jax.default_backend()}: {jax.devices()}")
'''

CHOOSE = """\
# @@choose-defaults
model_choice = choice("Model:", list(catalog.MODELS), "demo")
weights_choice = choice("Weights:", ["checkpoint", "random"], "checkpoint")
steps_choice = choice("Forecast steps (6 h each):", [1, 2, 3, 4, 8], 2)
# @@precision
precision_choice = choice(
    "Precision:", ["bfloat16", "float32"], resolve_precision("auto")  # float32 on a CPU
)
missing_choice = choice(
    "When the model's files are missing:",
    ["use the demo bundle", "download from the bucket"],
    "use the demo bundle",
)
"""

LOCATE = """\
# @@locate-kernel
# @@locate-default
explicit = None
if data_paths.DATA_DIR_ENV not in os.environ and Path.cwd().name == "notebooks":
    explicit = Path.cwd().parent / data_paths.DEFAULT_DATA_DIR
paths = data_paths.resolve_data_dir(explicit)
print(f"Data folder: {paths.root}")
# @@cache
use_compilation_cache(paths.root / "cache" / "jax")
"""

FETCH = '''\
MODEL = model_choice.value
STEPS = int(steps_choice.value)
model = catalog.model_by_key(MODEL)


def local_dataset(paths, model, steps):
    """The example dataset in the data folder that fits `model` best, or None."""
    if model.key == "demo":  # @@demo-own-dataset
        name = synthetic.dataset_file_name(synthetic.DEMO_RESOLUTION, 13, synthetic.DEMO_STEPS)
        return paths.dataset / name if (paths.dataset / name).is_file() else None
    files = [catalog.RemoteFile(f"dataset/{p.name}", p.stat().st_size)
             for p in paths.dataset.glob("*.nc")]
    try:
        chosen = catalog.Catalog.from_files(files).choose_dataset(model, steps)
    except InputError:
        return None
    return paths.dataset / chosen.file_name


def have_files(paths, model, steps):
    """Whether the checkpoint, the three statistics files and a fitting dataset are here."""
    return (
        (paths.params / model.file_name).is_file()
        and all(path.is_file() for path in paths.stats_files())
        and local_dataset(paths, model, steps) is not None
    )


if not have_files(paths, model, STEPS) and MODEL != "demo":
    if missing_choice.value == "download from the bucket":
        fetch.fetch_data(model=MODEL, steps=STEPS, data_dir=paths)
    else:
        print(f"The files of model {MODEL!r} are not in {paths.root}: using the demo bundle.")
        MODEL, model = "demo", config.DEMO_MODEL
if MODEL == "demo" and not have_files(paths, model, STEPS):
    try:
        synthetic.write_demo_bundle(paths, log=print)
    except InputError as error:  # @@real-stats
        print(error)
        paths = data_paths.DataPaths(paths.root / "demo")
        if not have_files(paths, model, STEPS):
            synthetic.write_demo_bundle(paths, log=print)
print(f"Model {MODEL!r}; files in {paths.root}")
'''

LISTING = """\
# @@listing
local_files = [
    catalog.RemoteFile(f"{kind}/{path.name}", path.stat().st_size)
    for kind in catalog.KINDS
    for path in sorted((paths.root / kind).glob("*"))
    if path.is_file() and not path.name.startswith(".")
]
states = {file.name: "here" for file in local_files}
print(catalog.format_listing(catalog.Catalog.from_files(local_files), model, states, STEPS))
"""

LOAD = """\
params_path = paths.params / model.file_name
dataset_path = local_dataset(paths, model, STEPS)
checkpoint = load_checkpoint(params_path)
statistics = load_statistics(paths.stats)
dataset = open_dataset(dataset_path)
task_config = checkpoint.task_config
# @@check-dataset
check_dataset(dataset, dataset_path.name, checkpoint.model_config, task_config, STEPS)

print(f"Checkpoint: {params_path.name}")
print(f"  description: {checkpoint.description}")
print(f"  licence: {checkpoint.license}")
print(f"  model: {describe(checkpoint.model_config)}")
print(f"  task: {len(task_config.input_variables)} input, {len(task_config.target_variables)} "
      f"target and {len(task_config.forcing_variables)} forcing variables on "
      f"{len(task_config.pressure_levels)} levels, inputs span {task_config.input_duration}")
print(f"Dataset: {dataset_path.name}")
print(f"  {dict(dataset.sizes)}, from {str(dataset.datetime.values[0, 0])[:16]}")
print(f"  {dataset.attrs.get('description', '')}")

if weights_choice.value == "random":
    # @@random-weights
    params = init_params(checkpoint.model_config, task_config, dataset.lat.values,
                         dataset.lon.values, seed=0)
else:
    params = checkpoint.params
sizes = [leaf.size for leaf in jax.tree.leaves(params)]
print(f"Weights: {weights_choice.value}, {sum(sizes):,} parameters in {len(sizes)} arrays")
"""

PLOT_CHOICE = """\
plot_variable = choice("Variable:", list(task_config.target_variables), "2m_temperature")
plot_level = choice("Level (hPa):", list(task_config.pressure_levels), 500)
"""

PLOT_INPUTS = '''\
def field(ds, name, level):
    """One variable of the first batch entry, at `level` when it has levels."""
    array = ds[name].isel(batch=0)
    return array.sel(level=level) if "level" in array.dims else array


first = field(dataset, plot_variable.value, plot_level.value).isel(time=0)
when = str(dataset.datetime.values[0, 0])[:16]
plotting.map_figure(first, title=f"{plot_variable.value} at {when} (first input frame)",
                    land_sea_mask=dataset.land_sea_mask)
'''

EXTRACT = """\
# @@extract-window
inputs, targets, forcings = data.forecast_window(dataset, task_config, STEPS)
for name, part in (("inputs", inputs), ("targets", targets), ("forcings", forcings)):
    hours = (part.time.values / np.timedelta64(1, "h")).tolist()
    print(f"{name:9} {len(part.data_vars):2} variables, sizes {dict(part.sizes)}, "
          f"lead times {hours} h")
"""

PREDICT = """\
predictor, _ = assemble_predictor(  # @@assemble
    checkpoint.model_config, task_config, statistics, dataset.lat.values, dataset.lon.values,
    precision=precision_choice.value, graphs_folder=paths.cache / "graphs",
)
params = jax.tree.map(jnp.asarray, params)
input_arrays = data.dataset_to_arrays(inputs)  # @@arrays
forcing_arrays = data.dataset_to_arrays(forcings)

started = time.perf_counter()
prediction_arrays = rollout.predict(predictor, params, input_arrays, forcing_arrays)
print(f"{STEPS} steps in {time.perf_counter() - started:.1f} s (compilation included)")

# @@reference-time
reference = dataset.datetime.values[:, task_config.input_frames - 1]
predictions = data.arrays_to_dataset(
    prediction_arrays,
    lat=dataset.lat.values,
    lon=dataset.lon.values,
    levels=task_config.pressure_levels,
    lead_times=targets.time.values,
    reference_datetimes=reference,
)
predictions
"""

PLOT_PRED_CHOICE = """\
plot_step = choice("Lead time (steps of 6 h):", list(range(1, STEPS + 1)), STEPS)
"""

PLOT_PRED = """\
step = plot_step.value - 1
plotting.map_figure(
    field(predictions, plot_variable.value, plot_level.value).isel(time=step),
    field(targets, plot_variable.value, plot_level.value).isel(time=step),
    land_sea_mask=dataset.land_sea_mask,
)
"""

EVALUATE = """\
# @@persistence
metrics = evaluation.evaluate(predictions, targets, last_inputs=inputs)
shown = ["2m_temperature", "mean_sea_level_pressure", "geopotential"]
print(evaluation.format_metrics_table(
    evaluation.metrics_table(metrics, variables=shown, levels=[500])
))
plotting.rmse_figure(metrics, variables=shown, level=500)
"""

LOSS = """\
constants = predictor.constants()  # @@constants
target_arrays = data.dataset_to_arrays(targets)
loss_fn = jax.jit(functools.partial(loss_and_diagnostics, predictor))

loss, diagnostics = loss_fn(params, constants, input_arrays, target_arrays, forcing_arrays)
print(f"loss: {float(loss):.4f}")
for name, value in sorted(diagnostics.items()):
    print(f"  {name:28} {float(value):.4f}")
"""

GRADS = """\
grads_fn = jax.jit(functools.partial(loss_and_grads, predictor))
(loss, _), grads = grads_fn(params, constants, input_arrays, target_arrays, forcing_arrays)


def norm(tree):
    return float(jnp.sqrt(sum(jnp.sum(leaf.astype(jnp.float32) ** 2)
                              for leaf in jax.tree.leaves(tree))))


print(f"loss {float(loss):.4f}, gradient norm {norm(grads):.4f}")
# @@largest-grads
by_module = sorted(((norm(leaves), module) for module, leaves in grads.items()), reverse=True)
for value, module in by_module[:5]:
    print(f"  {value:10.4f}  {module}")
"""

TRAIN = """\
# @@learning-rate
learning_rate = 1e-3 if weights_choice.value == "random" else 1e-5
optimizer = default_optimizer(learning_rate=learning_rate)
opt_state = optimizer.init(params)
train_step = make_train_step(predictor, optimizer)

# @@train-loop
trained, losses = params, []
for iteration in range(3):
    trained, opt_state, loss, _ = train_step(
        trained, opt_state, constants, input_arrays, target_arrays, forcing_arrays
    )
    losses.append(float(loss))
after, _ = loss_fn(trained, constants, input_arrays, target_arrays, forcing_arrays)
losses.append(float(after))
print("loss before each step, then after the last:", [round(value, 4) for value in losses])
plotting.loss_figure(losses, title="loss on this batch")
"""
