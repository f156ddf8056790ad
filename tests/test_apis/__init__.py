# Copyright (c) mmseg-groupvit contributors. All rights reserved.
