"""Shipped trained weights (.safetensors); a package so they install and are found as resources."""
