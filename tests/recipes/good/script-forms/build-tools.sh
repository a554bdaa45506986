#!/bin/bash
make tools
