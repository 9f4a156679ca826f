"""What Keras 3 and tf-keras share: layer classes, config keys, activations (data only, no TensorFlow).

A layer class is listed in :data:`SHARED_LAYERS` when both versions build it from the same
config keys (after the renames and defaults below) into a layer with the same call and the
same weights in the same order, so a model can be rebuilt in the other version and its
weights copied array by array. Everything else is refused, by name, before anything runs.
"""

from __future__ import annotations

# Layer classes both versions build alike (canonical names: a saved config never holds an alias).
SHARED_LAYERS = frozenset({
    # core
    "InputLayer", "Dense", "EinsumDense", "Embedding", "Activation", "Identity", "Masking",
    # convolution
    "Conv1D", "Conv2D", "Conv3D", "Conv1DTranspose", "Conv2DTranspose", "Conv3DTranspose",
    "DepthwiseConv1D", "DepthwiseConv2D", "SeparableConv1D", "SeparableConv2D",
    # pooling
    "MaxPooling1D", "MaxPooling2D", "MaxPooling3D", "AveragePooling1D", "AveragePooling2D", "AveragePooling3D",
    "GlobalMaxPooling1D", "GlobalMaxPooling2D", "GlobalMaxPooling3D",
    "GlobalAveragePooling1D", "GlobalAveragePooling2D", "GlobalAveragePooling3D",
    # normalization
    "BatchNormalization", "LayerNormalization", "GroupNormalization", "UnitNormalization",
    # regularization
    "Dropout", "SpatialDropout1D", "SpatialDropout2D", "SpatialDropout3D", "GaussianNoise", "GaussianDropout",
    "AlphaDropout", "ActivityRegularization",
    # activations
    "ReLU", "LeakyReLU", "PReLU", "ELU", "Softmax",
    # merging
    "Add", "Subtract", "Multiply", "Average", "Maximum", "Minimum", "Concatenate", "Dot",
    # reshaping
    "Flatten", "Reshape", "Permute", "RepeatVector", "ZeroPadding1D", "ZeroPadding2D", "ZeroPadding3D",
    "Cropping1D", "Cropping2D", "Cropping3D", "UpSampling1D", "UpSampling2D", "UpSampling3D",
    # preprocessing without state
    "Rescaling", "CenterCrop", "Resizing",
})

# Layer classes of Keras 3 that tf-keras does not have at all.
KERAS3_ONLY_LAYERS = frozenset({
    "AdaptiveAveragePooling1D", "AdaptiveAveragePooling2D", "AdaptiveAveragePooling3D", "AdaptiveMaxPooling1D",
    "AdaptiveMaxPooling2D", "AdaptiveMaxPooling3D", "AugMix", "AutoContrast",
    "ContrastLimitedAdaptiveHistogramEqualization", "CutMix", "Equalization", "FlaxLayer", "GroupQueryAttention",
    "JaxLayer", "MaxNumBoundingBoxes", "MelSpectrogram", "MixUp", "Pipeline", "RMSNormalization", "RandAugment",
    "RandomColorDegeneration", "RandomColorJitter", "RandomElasticTransform", "RandomErasing", "RandomGaussianBlur",
    "RandomGrayscale", "RandomHue", "RandomInvert", "RandomPerspective", "RandomPosterization", "RandomSaturation",
    "RandomSharpness", "RandomShear", "ReversibleEmbedding", "STFTSpectrogram", "Solarization", "TFSMLayer",
    "TorchModuleWrapper",
})

# Model classes whose config is a graph of layers (translated layer by layer).
MODEL_CLASSES = frozenset({"Functional", "Sequential", "Model"})

# Keras 3 config keys that tf-keras does not have, by layer class ("*": any class), with the value
# that means what tf-keras does anyway. Another value cannot be translated.
KERAS3_ONLY_KEYS: dict[str, dict[str, object]] = {
    "*": {"quantization_config": None, "lora_rank": None, "lora_alpha": None},
    "InputLayer": {"optional": False},
    "LayerNormalization": {"rms_scaling": False},
    "ZeroPadding1D": {"data_format": "channels_last"},
    "CenterCrop": {"data_format": "channels_last"},
    "Resizing": {"data_format": "channels_last", "antialias": False, "pad_to_aspect_ratio": False,
                 "fill_mode": "constant", "fill_value": 0.0},
}

# tf-keras config keys that Keras 3 does not have, by layer class, with the value that means what
# Keras 3 does. ``ANY`` marks a key tf-keras writes but never uses for that class.
ANY = object()
_SEPARABLE_UNUSED = {"groups": 1, "kernel_initializer": ANY, "kernel_regularizer": None, "kernel_constraint": None}
TF_KERAS_ONLY_KEYS: dict[str, dict[str, object]] = {
    "Conv1DTranspose": {"groups": 1}, "Conv2DTranspose": {"groups": 1}, "Conv3DTranspose": {"groups": 1},
    "DepthwiseConv1D": {"groups": 1}, "DepthwiseConv2D": {"groups": 1},
    "SeparableConv1D": _SEPARABLE_UNUSED, "SeparableConv2D": _SEPARABLE_UNUSED,
    "SpatialDropout1D": {"noise_shape": None, "trainable": True},
    "SpatialDropout2D": {"noise_shape": None, "trainable": True},
    "SpatialDropout3D": {"noise_shape": None, "trainable": True},
    "Embedding": {"input_length": None},
    "BatchNormalization": {"fused": None, "virtual_batch_size": None, "adjustment": None},
}

# Config keys named differently: Keras 3 name -> tf-keras name, by layer class.
RENAMED_KEYS: dict[str, dict[str, str]] = {
    "InputLayer": {"batch_shape": "batch_input_shape"},
    "LeakyReLU": {"negative_slope": "alpha"},
}

# Activation names as Keras 3 writes them -> the tf-keras name of the same function.
RENAMED_ACTIVATIONS = {"silu": "swish"}
# Activations tf-keras knows by name.
TF_KERAS_ACTIVATIONS = frozenset({
    "elu", "exponential", "gelu", "hard_sigmoid", "linear", "mish", "relu", "selu", "sigmoid", "softmax",
    "softplus", "softsign", "swish", "tanh",
})
ACTIVATION_KEYS = ("activation", "recurrent_activation")

# Initializers, regularizers and constraints Keras 3 has and tf-keras has not.
KERAS3_ONLY_OBJECTS = frozenset({"STFT", "STFTInitializer"})
# Keras 3 keys of initializers that tf-keras lacks, with the value that means what tf-keras does.
KERAS3_ONLY_OBJECT_KEYS: dict[str, object] = {"input_axes": None, "output_axes": None}
# Dtype policies both versions understand by name (a quantized policy is Keras 3 only).
SHARED_DTYPE_POLICIES = frozenset({"float16", "float32", "float64", "bfloat16", "mixed_float16",
                                   "mixed_bfloat16"})
