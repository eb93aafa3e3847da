"""Installs the ``mrcnn`` and ``fashion`` packages: ``pip install -e .`` (add ``[dev]`` for the test tools)."""

from pathlib import Path

from setuptools import find_packages, setup

here = Path(__file__).parent

setup(
    name="mrcnn-tf2",
    version="0.1.0",
    description="Mask R-CNN for TensorFlow 2 / Keras 3 with Matterport's API, built for fashion parsing",
    long_description=(here / "README.md").read_text(encoding="utf-8"),
    long_description_content_type="text/markdown",
    python_requires=">=3.10",
    packages=find_packages(include=["mrcnn", "mrcnn.*", "fashion", "fashion.*"]),
    include_package_data=True,
    package_data={"fashion": ["sample/**/*", "sample/*"], "fashion.serve": ["static/*"]},
    install_requires=[
        "tensorflow>=2.16",
        "tensorboard",
        "keras>=3",
        "numpy",
        "scipy",
        "scikit-image",
        "h5py",
        "pycocotools",
        "matplotlib",
        "tqdm",
        "opencv-python",
        "imgaug>=0.4.0",
        # fashion-serve: the HTTP service (python-multipart parses uploaded forms).
        "fastapi>=0.110",
        "uvicorn>=0.29",
        "python-multipart>=0.0.9",
    ],
    entry_points={
        "console_scripts": [
            "fashion-train = fashion.train:main",
            "fashion-evaluate = fashion.evaluate:main",
            "fashion-infer = fashion.infer:main",
            "fashion-serve = fashion.serve.cli:main",
        ]
    },
    extras_require={
        # fashionpedia (BSD; pulls scikit-learn): the official FPEval our Fashionpedia AP is tested against.
        # httpx: FastAPI's TestClient; selenium: the upload page's browser test (Debian's chromium and
        # chromium-driver, which .ci/run installs).
        "dev": [
            "pytest",
            "pytest-xdist",
            "hypothesis",
            "ruff",
            "nbmake",
            "tf2onnx",
            "onnxruntime",
            "fashionpedia==1.1",
            "httpx",
            "selenium>=4.11",
        ],
    },
    classifiers=[
        "Programming Language :: Python :: 3",
        "Topic :: Scientific/Engineering :: Image Recognition",
    ],
)
