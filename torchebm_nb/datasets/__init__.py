"""Datasets: synthetic 2-D densities and labelled image datasets for training and checking energy-based models
(see nbs/50_data_models/)."""
from .generators import (GaussianMixtureDataset, EightGaussiansDataset, TwoMoonsDataset, SwissRollDataset,
                         CircleDataset, CheckerboardDataset, PinwheelDataset, GridDataset)
from .images import DigitsDataset, MNISTDataset, FashionMNISTDataset, CIFAR10Dataset

__all__ = ['GaussianMixtureDataset', 'EightGaussiansDataset', 'TwoMoonsDataset', 'SwissRollDataset', 'CircleDataset',
           'CheckerboardDataset', 'PinwheelDataset', 'GridDataset',
           'DigitsDataset', 'MNISTDataset', 'FashionMNISTDataset', 'CIFAR10Dataset']
