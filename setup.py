from setuptools import find_packages, setup

setup(
    name="vissl_lite",
    version="0.2.0",
    description="A YAML-configured self-supervised trainer in the VISSL style",
    # The config tree conf/ ships inside the package as vissl_lite/conf, so an installed
    # `vissl-lite` finds its experiments from any directory.
    packages=find_packages(include=["vissl_lite", "vissl_lite.*"]) + ["vissl_lite.conf"],
    package_dir={"vissl_lite.conf": "conf"},
    package_data={"vissl_lite.conf": ["*.yaml", "**/*.yaml"]},
    python_requires=">=3.10",
    # A range for installing elsewhere (nn.RMSNorm needs torch 2.4); requirements.txt pins the
    # CPU wheel used here.
    install_requires=["torch>=2.4", "hydra-core>=1.3.2,<1.4", "omegaconf>=2.3,<2.4", "numpy>=1.26",
                      "scikit-learn>=1.3", "pillow>=10", "tqdm>=4.66", "matplotlib>=3.8", "tensorboard>=2.15",
                      "safetensors>=0.4"],
    entry_points={"console_scripts": ["vissl-lite=vissl_lite.cli:main",
                                     "vissl-lite-convert=vissl_lite.convert.__main__:console_main",
                                     "vissl-lite-export=vissl_lite.export:console_main"]},
)
