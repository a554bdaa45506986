#!/bin/bash
make install
