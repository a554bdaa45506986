#!/bin/bash
grep -q hello "$PREFIX/share/stored-tests/greeting.txt"
