"""Generate the synthetic COCO-format shapes dataset used by ``make demo``.

Example::

    python tools/make_demo_data.py --out data/demo --seed 0
    python tools/make_demo_data.py --out data/demo_easy --difficulty easy

Re-running with the same settings is a no-op; pass ``--force`` to rewrite.
See :mod:`mmkd.demo.shapes` for the file layout and label conventions.
"""
import argparse
import os.path as osp
import sys
import time

# Let the script run from a plain checkout as well as from an installed mmkd.
sys.path.insert(0, osp.dirname(osp.dirname(osp.abspath(__file__))))

from mmkd.demo.shapes import DIFFICULTY, generate_shapes  # noqa: E402


def parse_args(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description='Generate the synthetic shapes demo dataset (COCO '
        'instances + semantic maps).')
    parser.add_argument('--out', default='data/demo', help='dataset root')
    parser.add_argument('--seed', type=int, default=0)
    parser.add_argument('--num-train', type=int, default=500)
    parser.add_argument('--num-val', type=int, default=120)
    parser.add_argument(
        '--size', type=int, default=128, help='image side in pixels')
    parser.add_argument(
        '--difficulty',
        choices=sorted(DIFFICULTY),
        default='hard',
        help='scene preset: object count, clutter and shape sizes (the '
        'flags below override it); make demo uses "easy"')
    parser.add_argument('--min-objects', type=int)
    parser.add_argument('--max-objects', type=int)
    parser.add_argument(
        '--clutter',
        type=float,
        help='background clutter / noise strength (0 = clean)')
    parser.add_argument(
        '--force',
        action='store_true',
        help='regenerate even if an identical dataset exists')
    return parser.parse_args(argv)


def main(argv=None) -> None:
    args = parse_args(argv)
    start = time.time()
    res = generate_shapes(
        args.out,
        num_train=args.num_train,
        num_val=args.num_val,
        image_size=args.size,
        seed=args.seed,
        force=args.force,
        difficulty=args.difficulty,
        min_objects=args.min_objects,
        max_objects=args.max_objects,
        clutter=args.clutter)
    verb = 'generated' if res['generated'] else 'up to date, kept'
    print(f'shapes dataset {verb}: {res["out_dir"]} '
          f'({time.time() - start:.1f} s)')
    print(f'  classes: {", ".join(res["classes"])}')
    for split in ('train', 'val'):
        s = res[split]
        lo, med, hi = s['box_size_px']
        print(f'  {split}: {s["num_images"]} images, '
              f'{s["num_instances"]} instances, box size (sqrt wh) '
              f'{lo:g}/{med:g}/{hi:g} px (min/median/max)')
        print('    per class: ' + ', '.join(
            f'{k} {v}' for k, v in s['instances_per_class'].items()))
        print(f'    images {s["img_dir"]}  semantic {s["sem_dir"]}  '
              f'ann {s["ann_file"]}')


if __name__ == '__main__':
    main()
