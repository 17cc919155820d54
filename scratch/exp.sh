#!/bin/bash
# usage: exp.sh name method steps seed [--set ...]
name=$1; method=$2; steps=$3; seed=$4; shift 4
out=runs/exp/$name
rm -rf $out
node bin/i2i.js train --task mnist-optdigits --method $method --out $out --steps $steps --seed $seed --target-root ../shared/data/optdigits \
  --set batchSize=32 --set 'model.decoderWidths=[64,32,16]' --set 'model.imageCriticWidths=[16,32,64]' --set logEvery=100 --set checkpointEvery=1000 "$@" > $out.log 2>&1
echo "$name $(node bin/i2i.js eval --checkpoint $out --json | cut -c1-120)" >> runs/exp/results.txt
