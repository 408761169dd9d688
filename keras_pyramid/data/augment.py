"""Training augmentation and evaluation resizing, per regime, in `tf.data`.

Every image arrives as RGB of `image_size` (height, width), 0-255 float32:
normalization lives inside the model, so a served model takes raw pixels.

- "cifar" (small images, docs/architecture.md section 4): training takes a random
  `image_size` crop of the image zero-padded by 4 pixels, and a random
  horizontal flip; evaluation takes the image as it is. Images of another
  size are first resized (bilinear, antialiased) to `image_size`.
- "imagenet" (large images, the official ImageNet code): training takes a
  random resized crop (area 8%-100% of the image, aspect ratio 3/4-4/3,
  resized to `image_size`) and a random flip; evaluation resizes the image
  so that `image_size` is 87.5% of it (224 from 256) and takes the centre.
- "none": resized to `image_size`, training and evaluation alike.

Randomness is stateless: `seed` is a shape-(2,) int tensor, and the
pipeline passes (run seed, position in the stream), so the augmentation of an
example is a function of the run's seed and where it is: runs repeat and a
resumed run continues exactly.
"""

import dataclasses

from keras_pyramid.utils import checks

PAD = 4
REGIMES = ("cifar", "imagenet", "none")
# Largest side up to which "auto" picks the CIFAR regime: a random resized
# crop of a 32x32 image keeps a few pixels; ImageNet-size images need it.
CIFAR_REGIME_MAX_SIDE = 64
CROP_AREA = (0.08, 1.0)  # torchvision's RandomResizedCrop defaults
CROP_ASPECT_RATIO = (3 / 4, 4 / 3)
CENTER_CROP_FRACTION = 0.875  # 224 / 256


def default_regime(image_size):
    return "cifar" if max(image_size) <= CIFAR_REGIME_MAX_SIDE else "imagenet"


@dataclasses.dataclass(frozen=True)
class Preprocessing:
    """What a model of `image_size` gets: `training(image, seed)` and
    `evaluation(image)` turn a uint8 RGB image of any size into float32
    (height, width, 3). `flip`: the training regimes' random horizontal flip
    (off for data whose mirror image is another class: digits, text)."""

    image_size: tuple
    augment: str = "cifar"
    flip: bool = True

    def __post_init__(self):
        checks.check_choice("augment", self.augment, REGIMES)
        # (height, width): a bool is no size, though Python counts True as 1.
        object.__setattr__(self, "image_size", checks.check_shape("image_size",
                                                                  self.image_size, 2))

    def training(self, image, seed):
        import tensorflow as tf

        image = rgb(image)
        if self.augment == "cifar":
            return tf.cast(cifar_augment(resized(image, self.image_size), seed, self.flip),
                           tf.float32)
        if self.augment == "imagenet":
            return random_resized_crop_and_flip(image, self.image_size, seed, self.flip)
        return resized(image, self.image_size)

    def evaluation(self, image):
        image = rgb(image)
        if self.augment == "imagenet":
            return center_crop(image, self.image_size)
        return resized(image, self.image_size)


def rgb(image):
    """1 (grayscale) or 4 (RGBA: alpha dropped) channels -> 3."""
    import tensorflow as tf

    channels = image.shape[-1]
    if channels == 1:
        return tf.image.grayscale_to_rgb(image)
    if channels == 4:
        return image[..., :3]
    return image


def resized(image, size):
    """`image` as float32 of `size`; untouched (but cast) when it has it."""
    import tensorflow as tf

    if tuple(image.shape[:2]) == tuple(size):
        return tf.cast(image, tf.float32)
    return tf.image.resize(tf.cast(image, tf.float32), size, antialias=True)


def cifar_augment(image, seed, flip=True):
    """Random crop of the 4-pixel zero-padded image, and a random flip (with
    `flip`; the crop draws the same either way)."""
    import tensorflow as tf

    height, width = image.shape[0], image.shape[1]
    padded = tf.pad(image, [[PAD, PAD], [PAD, PAD], [0, 0]])
    crop_seed, flip_seed = tf.unstack(tf.random.experimental.stateless_split(seed, 2))
    image = tf.image.stateless_random_crop(padded, (height, width, 3), seed=crop_seed)
    return tf.image.stateless_random_flip_left_right(image, seed=flip_seed) if flip else image


def random_resized_crop_and_flip(image, size, seed, flip=True):
    """A crop of 8%-100% of the image's area with aspect ratio in [3/4, 4/3]
    (torchvision's RandomResizedCrop; the whole image if 10 draws fail),
    resized to `size`, then (with `flip`) flipped with probability 1/2."""
    import tensorflow as tf

    box_seed, flip_seed = tf.unstack(tf.random.experimental.stateless_split(seed, 2))
    whole = tf.constant([[[0.0, 0.0, 1.0, 1.0]]])
    begin, extent, _ = tf.image.stateless_sample_distorted_bounding_box(
        tf.shape(image), bounding_boxes=whole, seed=box_seed, min_object_covered=0.0,
        aspect_ratio_range=CROP_ASPECT_RATIO, area_range=CROP_AREA, max_attempts=10,
        use_image_if_no_bounding_boxes=True)
    crop = tf.slice(image, begin, extent)
    crop = tf.image.resize(tf.cast(crop, tf.float32), size, antialias=True)
    return tf.image.stateless_random_flip_left_right(crop, seed=flip_seed) if flip else crop


def center_crop(image, size):
    """Resize so that `size` is 87.5% of the image (the short side's way:
    224 out of 256), then the centre `size` window."""
    import tensorflow as tf

    shape = tf.cast(tf.shape(image)[:2], tf.float32)
    target = tf.constant(size, tf.float32)
    scale = tf.reduce_max(target / CENTER_CROP_FRACTION / shape)
    new = tf.maximum(tf.cast(tf.round(shape * scale), tf.int32), tf.constant(size))
    image = tf.image.resize(tf.cast(image, tf.float32), new, antialias=True)
    offset = (new - tf.constant(size)) // 2
    return tf.slice(image, [offset[0], offset[1], 0], [size[0], size[1], 3])
