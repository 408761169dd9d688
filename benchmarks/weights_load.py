"""How long trained weights take to load: the first time (fetch, check,
convert, save) and from the cache (build, load), for one preset, per backend.

    KERAS_BACKEND=tensorflow python benchmarks/weights_load.py --model pyramidnet272_a200 \
        --dataset cifar100 --repeats 3 --output weights_load.json

No network here: pytorchcv's network of that name, with random weights, is
"published" as a `.pth.zip` in a temporary folder and served through the
same `keras.utils.get_file` code by a `file://` URL (the registry's entry
with that URL and the file's SHA-1). Each repeat uses an empty cache for the
first load, then loads once more from it. Reports medians and ranges.
Needs torch and `pytorchcv` (pip install --no-deps pytorchcv==0.0.74).
"""

import argparse
import dataclasses
import hashlib
import json
import os
import statistics
import sys
import tempfile
import time
import zipfile


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="pyramidnet272_a200")
    parser.add_argument("--dataset", default="cifar100")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--output", default=None)
    args = parser.parse_args(argv)

    import keras
    import torch
    from pytorchcv.models import pyramidnet, pyramidnet_cifar

    import keras_pyramid
    from keras_pyramid import applications
    from keras_pyramid.models import presets
    from keras_pyramid.utils import versions
    from keras_pyramid.weights import cache as weights

    entry = applications.trained_weights(args.model, args.dataset)
    module = pyramidnet if entry.dataset == "imagenet" else pyramidnet_cifar
    server = tempfile.mkdtemp()
    pth = os.path.join(server, entry.file_name)
    torch.save(getattr(module, entry.source_name)().state_dict(), pth)
    with zipfile.ZipFile(pth + ".zip", "w") as archive:
        archive.write(pth, entry.file_name)
    local = dataclasses.replace(entry, url=f"file://{pth}.zip",
                                sha1=hashlib.sha1(open(pth, "rb").read()).hexdigest())
    os.remove(pth)
    presets.ARCHITECTURES = tuple(
        dataclasses.replace(a, weights=tuple(local if w is entry else w for w in a.weights))
        for a in presets.ARCHITECTURES)

    first, cached = [], []
    for _ in range(args.repeats):
        cache = tempfile.mkdtemp()
        weights.cache_dir = lambda cache=cache: cache
        start = time.perf_counter()
        keras_pyramid.build(args.model, weights=args.dataset)
        first.append(time.perf_counter() - start)
        start = time.perf_counter()
        keras_pyramid.build(args.model, weights=args.dataset)
        cached.append(time.perf_counter() - start)

    def summary(values):
        return {"median_s": statistics.median(values), "min_s": min(values),
                "max_s": max(values), "runs": len(values)}

    report = {"backend": keras.backend.backend(), "model": args.model,
              "dataset": args.dataset, "parameters": entry.parameters,
              "first_load": summary(first), "cached_load": summary(cached),
              "versions": versions.versions()}
    print(json.dumps(report, indent=2))
    if args.output:
        from keras_pyramid.utils.files import atomic_write_json

        atomic_write_json(args.output, report)
    return 0


if __name__ == "__main__":
    sys.exit(main())
